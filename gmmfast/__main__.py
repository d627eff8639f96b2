"""``gmmfast`` (the console script) and ``python -m gmmfast``: the command line.

``gmmfast`` alone runs ``gmmfast fit`` on the bundled Old Faithful data; see
``gmmfast --help`` and :mod:`gmmfast._cli`.
"""

import sys

from gmmfast._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
