"""``gmmfast`` (or ``python -m gmmfast``): fit a 2-component mixture to the bundled Old Faithful
data and print the fitted model."""

import sys
import time
from importlib import resources

import numpy as np

USAGE = """\
usage: gmmfast [--help]     (also: python -m gmmfast)

Fits GaussianMixture(n_components=2, covariance_type="full", random_state=0) to the
Old Faithful geyser data bundled with gmmfast (272 eruptions: duration and waiting
time, in minutes) and prints a summary of the fitted model: convergence, average
log-likelihood, BIC and each component's weight, mean, standard deviations and
correlation. It takes no other arguments; a full command-line interface is planned."""


def load_old_faithful():
    """Return the bundled Old Faithful data as a (272, 2) float64 array and its column names."""
    path = resources.files("gmmfast").joinpath("data").joinpath("old_faithful.csv")
    with path.open("r", encoding="utf-8") as f:
        names = f.readline().strip().split(",")
        X = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    return X, names


def main(argv=None):
    """Entry point of the ``gmmfast`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if argv:
        print(f"gmmfast: unrecognised argument(s): {' '.join(argv)} "
              "(try --help)", file=sys.stderr)
        return 2

    from gmmfast import GaussianMixture

    X, names = load_old_faithful()
    start = time.perf_counter()
    gm = GaussianMixture(n_components=2, covariance_type="full", random_state=0).fit(X)
    elapsed = time.perf_counter() - start

    print(f"Old Faithful geyser data: {X.shape[0]} rows x {X.shape[1]} columns "
          f"({', '.join(names)}; minutes)")
    print('GaussianMixture(n_components=2, covariance_type="full", random_state=0)')
    print(f"  converged:          {gm.converged_} after {gm.n_iter_} iterations")
    print(f"  avg log-likelihood: {gm.score(X):.6f}")
    print(f"  BIC:                {gm.bic(X):.4f}")
    for k in range(gm.n_components):
        cov = gm.covariances_[k]
        std = np.sqrt(np.diag(cov))
        corr = cov[0, 1] / (std[0] * std[1])
        print(f"  component {k}: weight {gm.weights_[k]:.4f}")
        for j, name in enumerate(names):
            print(f"    {name:<10} mean {gm.means_[k, j]:9.4f}   std {std[j]:8.4f}")
        print(f"    correlation({names[0]}, {names[1]}) = {corr:.4f}")
    print(f"  fit time: {elapsed * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
