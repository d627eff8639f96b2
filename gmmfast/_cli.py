"""The ``gmmfast`` command: ``fit`` (choose and fit a mixture), ``predict``, ``sample``.

Exit status 0 on success, 2 for a usage or input error (one line on stderr, no traceback).
"""

import argparse
import csv
import os
import re
import sys
import time

import numpy as np

from gmmfast._datafile import DataError, column_names, parse_columns, read_table
from gmmfast._files import error_summary, format_bytes
from gmmfast._covariance_models import COVARIANCE_MODELS, sklearn_layout
from gmmfast._mstep import COVARIANCE_TYPES
from gmmfast.plot import full_covariances  # numpy only: no matplotlib import
from gmmfast._selection import CRITERIA, DEFAULT_N_COMPONENTS, describe_grid, progress_text

DESCRIPTION = """\
Gaussian mixture models from the command line. 'gmmfast fit' chooses the number of
components and the covariance type by an information criterion and prints the model;
'gmmfast' alone runs 'gmmfast fit' on the Old Faithful geyser data bundled with gmmfast."""

FIT_EPILOG = """\
examples:
  gmmfast fit                                   the bundled Old Faithful data
  gmmfast fit data.csv --columns x,y --save model.npz --labels labels.csv
  gmmfast fit data.npy -k 1-20 -c full,diag --criterion icl --plot clusters.png
  gmmfast predict model.npz new.csv -o labels.csv
  gmmfast sample model.npz -n 1000"""


class UserError(Exception):
    """A problem with the command line or its inputs: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    from gmmfast import __version__

    parser = _Parser(prog="gmmfast", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gmmfast {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{fit,predict,sample}")

    fit = commands.add_parser(
        "fit", help="choose and fit a Gaussian mixture, print a summary",
        description="Fit Gaussian mixtures over a grid of n_components x covariance_type,\n"
                    "keep the best by BIC (or AIC, ICL) and print it.",
        epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("data", nargs="?", metavar="DATA",
                     help="a .csv/.tsv/.txt (header detected), .npy or .parquet file; "
                          "default: the bundled Old Faithful data (272 x 2)")
    fit.add_argument("-k", "--n-components", default="auto", metavar="K|auto",
                     help="number of components: K, a list (2,3,5), a range (1-6) or auto "
                          f"(= {describe_grid(list(DEFAULT_N_COMPONENTS))}); default auto")
    fit.add_argument("-c", "--covariance-type", default="auto", metavar="T|auto",
                     help=f"{', '.join(COVARIANCE_TYPES)} or one of mclust's 14 models "
                          "(EII, VII, ..., VEV, EVV, VVV), a comma-separated list, or auto "
                          f"(= {', '.join(COVARIANCE_TYPES)}); default auto")
    fit.add_argument("--criterion", choices=CRITERIA, default="bic",
                     help="lower is better; default bic")
    _add_columns(fit)
    fit.add_argument("--seed", type=int, default=0, metavar="N",
                     help="random seed of the initialisations (default 0)")
    fit.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                     help="initialisations per candidate, the best is kept (default 1)")
    fit.add_argument("--max-iter", type=_positive_int, default=100, metavar="N",
                     help="EM iterations per initialisation (default 100)")
    fit.add_argument("--tol", type=float, default=1e-3, help="EM tolerance (default 1e-3)")
    fit.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                     help="threads (default: all, as OpenMP's default)")
    fit.add_argument("--save", metavar="MODEL", help="write the chosen model to this file "
                                                     "(.npz format, see gmmfast.load)")
    fit.add_argument("--labels", metavar="OUT.csv",
                     help="write each row's label and probabilities to this CSV file")
    fit.add_argument("--plot", metavar="OUT.png",
                     help="draw the clusters (and the criterion of a search) to this image "
                          "(needs matplotlib)")
    _add_progress(fit)
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict", help="label new data with a saved model",
        description="Write each row's most likely component and the probabilities of "
                    "every component as CSV (columns: label, p_0, p_1, ...).")
    predict.add_argument("model", metavar="MODEL", help="a model file from 'fit --save'")
    predict.add_argument("data", metavar="DATA", help="a .csv/.tsv/.txt, .npy or .parquet file")
    _add_columns(predict, default_help=" (default: the model's columns when DATA has them "
                                       "by name, else every column)")
    predict.add_argument("-o", "--output", metavar="OUT.csv",
                         help="write to this file instead of standard output")
    predict.set_defaults(run=run_predict)

    sample = commands.add_parser(
        "sample", help="draw samples from a saved model",
        description="Draw samples from a saved model and write them as CSV (one column per "
                    "feature, then 'component').")
    sample.add_argument("model", metavar="MODEL", help="a model file from 'fit --save'")
    sample.add_argument("-n", "--n-samples", type=_positive_int, required=True, metavar="N",
                        help="number of samples")
    sample.add_argument("--seed", type=int, default=None, metavar="N",
                        help="random seed (default: the model's random_state)")
    sample.add_argument("-o", "--output", metavar="OUT.csv",
                        help="write to this file instead of standard output")
    sample.set_defaults(run=run_sample)
    return parser


def _add_columns(parser, default_help=" (default: every column)"):
    parser.add_argument("--columns", metavar="A,B,...",
                        help="comma-separated column names or 0-based indices to use"
                             + default_help)


def _add_progress(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", action="store_true",
                       help="a progress line per candidate on stderr (the default when "
                            "stderr is a terminal)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


# Counts (threads, iterations, initialisations, samples) reach the compiled core as C ints.
MAX_COUNT = 2**31 - 1


def _positive_int(text):
    # Refused before int(): a number of thousands of digits is slow (or an error) to parse.
    if len(text.strip().lstrip("+-").lstrip("0")) > len(str(MAX_COUNT)):
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT}, got {text}")
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT}, got {value}")
    return value


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        argv = ["fit"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("give a command: fit, predict or sample")
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of our output went away (e.g. "| head"): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"gmmfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, DataError, ValueError, OSError, ImportError, MemoryError) as exc:
        message = error_summary(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        if isinstance(exc, MemoryError):
            message = f"out of memory ({message})"
        print(f"gmmfast {args.command}: error: {message}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------------------
# gmmfast fit
# ----------------------------------------------------------------------------------------


# Each candidate is a fit: a grid this long is a typo (1-1000000), not a search.
MAX_GRID_SIZE = 10_000


def parse_n_components(text):
    """``auto`` → 1..10; ``3`` → [3]; ``2,3,5`` → [2, 3, 5]; ``1-6`` → [1, ..., 6]."""
    text = text.strip().lower()
    if text == "auto":
        return list(DEFAULT_N_COMPONENTS)
    ranges = [_parse_k_range(part.strip(), text) for part in text.split(",")]
    size = sum(high - low + 1 for low, high in ranges)
    if size > MAX_GRID_SIZE:
        raise UserError(f"--n-components {text} lists {size} values; a search takes at "
                        f"most {MAX_GRID_SIZE} (each one is a fit)")
    values = [k for low, high in ranges for k in range(low, high + 1)]
    if any(v < 1 for v in values):
        raise UserError("--n-components: the number of components must be at least 1")
    return list(dict.fromkeys(values))


def _parse_k_range(part, text):
    """``"3"`` → (3, 3), ``"1-6"`` → (1, 6)."""
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
    if not match:
        raise UserError(f"--n-components: expected K, a list (2,3,5), a range (1-6) or "
                        f"auto, got {text!r}")
    bounds = [match.group(1), match.group(2) or match.group(1)]
    if any(len(bound.lstrip("0")) > 18 for bound in bounds):
        raise UserError(f"--n-components: {part} is too large")
    low, high = map(int, bounds)
    if low > high:
        raise UserError(f"--n-components: empty range {part!r}")
    return low, high


def parse_covariance_types(text):
    text = text.strip()
    if text.lower() in ("auto", "all"):
        return list(COVARIANCE_TYPES)
    types = [_covariance_name(part.strip()) for part in text.split(",")]
    return list(dict.fromkeys(types))


def _covariance_name(text):
    """A scikit-learn or mclust covariance name, in any letter case."""
    if text.lower() in COVARIANCE_TYPES:
        return text.lower()
    if text.upper() in COVARIANCE_MODELS:
        return text.upper()
    raise UserError(f"--covariance-type: {text!r} is not one of "
                    f"{', '.join(COVARIANCE_TYPES)}, mclust's "
                    f"{', '.join(COVARIANCE_MODELS)} or auto")


def _show_progress(args):
    if args.quiet:
        return False
    return args.progress or sys.stderr.isatty()


def run_fit(args):
    from gmmfast._selection import select_model

    grid = parse_n_components(args.n_components)
    types = parse_covariance_types(args.covariance_type)
    if args.plot:
        _check_matplotlib("--plot")
    for option, path in (("--save", args.save), ("--labels", args.labels),
                         ("--plot", args.plot)):
        _check_output_path(option, path)
    if not args.tol >= 0:  # also refuses nan, with which EM would never converge
        raise UserError(f"--tol must be a number >= 0, got {args.tol}")
    table = read_table(args.data, parse_columns(args.columns))
    X = table.X
    n_rows = X.shape[0]
    if n_rows < 2:
        raise UserError(f"{table.source}: a mixture needs at least 2 rows, got {n_rows}")
    if min(grid) > n_rows:
        what = f"{grid[0]} is" if len(grid) == 1 else f"every value ({describe_grid(grid)}) is"
        raise UserError(f"--n-components {what} larger than the number of rows ({n_rows})")

    def print_progress(done, total, row):
        print(f"gmmfast: {progress_text(done, total, row)}", file=sys.stderr, flush=True)

    progress = print_progress if _show_progress(args) else None

    start = time.perf_counter()
    result = select_model(X, grid, types, args.criterion, random_state=args.seed,
                          n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                          n_threads=args.threads, progress=progress)
    elapsed = time.perf_counter() - start
    print(format_fit_summary(result, table, grid, types, args, elapsed))

    model = result.best_estimator_
    if args.save:
        from gmmfast._io import save_model

        save_model(model, args.save, extra={"columns": table.names, "source": table.source})
        print(f"\nModel written to {args.save} (load it with gmmfast.load, or use "
              f"'gmmfast predict {args.save} DATA')")
    if args.labels:
        with _output(args.labels) as out:
            write_predictions(out, model, X)
        print(f"Labels and probabilities of the {n_rows} rows written to {args.labels}")
    if args.plot:
        write_figure(args.plot, result, X, table.names, search=len(result.criterion_table_) > 1)
        print(f"Figure written to {args.plot}")
    return 0


def format_fit_summary(result, table, grid, types, args, elapsed):
    model = result.best_estimator_
    criteria = result.criterion_table_
    best = result.best_index_
    name = args.criterion.upper()
    lines = [f"Data: {table.describe()}"]
    n_candidates = len(criteria)
    if n_candidates > 1:
        lines.append(f"Search: n_components {describe_grid(grid)} x covariance_type "
                     f"{', '.join(types)} = {n_candidates} candidates, by {name}, "
                     f"seed {args.seed}")
        lines.append("")
        legend = ["* chosen"]
        if not criteria["converged"][criteria["status"] == "ok"].all():
            legend.append("! did not converge")
        if (criteria["status"] == "skipped").any():
            legend.append("- more components than rows")
        lines.append(f"{name} (lower is better; {', '.join(legend)}):")
        lines.append(criteria.format())
        lines.append("")
    status = (f"converged after {model.n_iter_} iterations" if model.converged_
              else f"did NOT converge in {model.n_iter_} iterations")
    lines.append(f"Chosen model: n_components={model.n_components}, covariance_type="
                 f"{model.covariance_type!r}, seed {args.seed}")
    lines.append(f"  {status}; average log-likelihood "
                 f"{criteria['log_likelihood'][best] / table.X.shape[0]:.4f}; "
                 f"{criteria['n_parameters'][best]} free parameters")
    lines.append(f"  BIC {criteria['bic'][best]:.2f}   AIC {criteria['aic'][best]:.2f}"
                 + (f"   ICL {criteria['icl'][best]:.2f}" if "icl" in criteria else ""))
    lines.append("")
    lines.extend(format_components(model, table.names))
    lines.append("")
    lines.append(f"Time: {elapsed:.2f} s for {n_candidates} "
                 f"candidate{'s' * (n_candidates != 1)}")
    return "\n".join(lines)


def _fmt(value):
    return f"{value:.4g}"


def format_components(model, names):
    """One row per component: weight, then mean and standard deviation of each feature.

    With two features and full or tied covariances, also their correlation. With more than
    four features, one line per (component, feature) instead.
    """
    covariances = full_covariances(model)
    sds = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    n_features = model.means_.shape[1]
    lines = ["Components (mean and standard deviation of each column):"]
    if n_features <= 4:
        width = max(12, *(len(n) + 2 for n in names))
        correlation = (n_features == 2
                       and sklearn_layout(model.covariance_type) in ("full", "tied"))
        header = f"{'':>4} {'':>8}" + "".join(f"{n:>{width + (width + len(n)) // 2}}"
                                              f"{'':>{width - (width + len(n)) // 2}}"
                                              for n in names)
        sub = f"{'':>4} {'weight':>8}" + "".join(f"{'mean':>{width}}{'sd':>{width}}" for _ in names)
        if correlation:
            sub += f"{'correlation':>13}"
        lines += [header.rstrip(), sub]
        for k in range(model.n_components):
            row = f"{k:>4} {model.weights_[k]:>8.4f}"
            row += "".join(f"{_fmt(model.means_[k, j]):>{width}}{_fmt(sds[k, j]):>{width}}"
                           for j in range(n_features))
            if correlation:
                rho = covariances[k, 0, 1] / (sds[k, 0] * sds[k, 1])
                row += f"{rho:>13.3f}"
            lines.append(row)
        return lines
    width = max(8, *(len(n) for n in names))
    for k in range(model.n_components):
        lines.append(f"  component {k}: weight {model.weights_[k]:.4f}")
        for j, n in enumerate(names):
            lines.append(f"    {n:<{width}}  mean {_fmt(model.means_[k, j]):>10}   "
                         f"sd {_fmt(sds[k, j]):>10}")
    return lines


def _check_output_path(option, path):
    """Refuse, before any work, an output file whose folder does not exist."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{option} {path}: the folder {os.path.dirname(path) or '.'} does "
                        "not exist")
    if os.path.isdir(path):
        raise UserError(f"{option} {path}: is a directory")


def _check_matplotlib(option):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(f"{option} needs matplotlib: pip install 'gmmfast[plot]'") from None


def write_figure(path, result, X, names, search):
    """The cluster plot (and, after a search, the criterion plot beside it) as an image."""
    from matplotlib.figure import Figure

    from gmmfast.plot import plot_clusters, plot_criterion

    # A bare Figure (no pyplot): no GUI backend, no global state, works headless.
    figure = Figure(figsize=(12, 5) if search else (6.5, 5), layout="constrained")
    axes = figure.subplots(1, 2 if search else 1, squeeze=False)[0]
    plot_clusters(result.best_estimator_, X, ax=axes[0], feature_names=names)
    if search:
        plot_criterion(result, ax=axes[1])
    figure.savefig(path, dpi=110)


# ----------------------------------------------------------------------------------------
# gmmfast predict / sample
# ----------------------------------------------------------------------------------------


class _output:
    """A context manager yielding a text stream: the file ``path``, or stdout for None."""

    def __init__(self, path):
        self.path = path
        self.stream = None

    def __enter__(self):
        if self.path is None or self.path == "-":
            return sys.stdout
        self.stream = open(self.path, "w", encoding="utf-8", newline="")
        return self.stream

    def __exit__(self, *exc):
        if self.stream is not None:
            self.stream.close()


def write_predictions(out, model, X, block=65536):
    """CSV of ``label, p_0, …, p_{K−1}``, computed block by block (never N × K at once)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label"] + [f"p_{k}" for k in range(model.n_components)])
    X = np.ascontiguousarray(X, dtype=model.means_.dtype)
    for start in range(0, X.shape[0], block):
        proba = model.predict_proba(X[start:start + block])
        labels = model.predict(X[start:start + block])
        for label, row in zip(labels, proba):
            writer.writerow([int(label)] + [f"{p:.10g}" for p in row])


def _load_model(path):
    """The model of a file and the column names ``fit --save`` stored with it (or None)."""
    from gmmfast._io import read_model

    if not os.path.exists(path):
        raise UserError(f"no such model file: {path}")
    model, metadata = read_model(path)
    columns = metadata["extra"].get("columns")
    n_features = model.means_.shape[1]
    if columns is not None and not (isinstance(columns, list) and len(columns) == n_features
                                    and all(isinstance(c, str) for c in columns)):
        raise UserError(f"{path}: the column names stored with the model are not a list of "
                        f"{n_features} names (the file was edited or damaged)")
    return model, columns


def run_predict(args):
    model, saved_columns = _load_model(args.model)
    columns = parse_columns(args.columns)
    if columns is None and saved_columns:
        # The model's columns by name when the file has them (e.g. a header with more
        # columns than the model was fitted on); otherwise the file as it is.
        names = column_names(args.data)
        if names is not None and set(saved_columns) <= set(names):
            columns = saved_columns
    table = read_table(args.data, columns)
    n_features = model.means_.shape[1]
    if table.X.shape[1] != n_features:
        raise UserError(f"{table.source} has {table.X.shape[1]} columns but the model was "
                        f"fitted on {n_features}"
                        + (f" ({', '.join(saved_columns)})" if saved_columns else "")
                        + "; choose them with --columns")
    with _output(args.output) as out:
        write_predictions(out, model, table.X)
    return 0


def run_sample(args):
    model, saved_columns = _load_model(args.model)
    # The samples are drawn per component then stacked (two copies), with int64 labels.
    n_features = model.means_.shape[1]
    _check_fits_in_memory(args.n_samples * (2 * n_features * model.means_.itemsize + 8),
                          f"-n {args.n_samples}: the samples")
    if args.seed is not None:
        model.set_params(random_state=args.seed)
    X, labels = model.sample(args.n_samples)
    names = saved_columns or [f"x{i}" for i in range(X.shape[1])]
    with _output(args.output) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(list(names) + ["component"])
        for row, label in zip(X, labels):
            writer.writerow([f"{v:.10g}" for v in row] + [int(label)])
    return 0


def _check_fits_in_memory(n_bytes, what):
    """Refuse up front what cannot fit in this machine's memory (where it can be known)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): MemoryError later
        return
    if n_bytes > memory:
        raise UserError(f"{what} would take {format_bytes(n_bytes)}, more than this "
                        f"machine's memory ({format_bytes(memory)})")
