"""The ``gmmfast`` command: ``fit`` (choose and fit a mixture), ``predict``, ``sample``,
``impute`` (fill in missing values).

Exit status 0 on success, 2 for a usage or input error (one line on stderr, no traceback).
"""

import argparse
import collections
import contextlib
import copy
import functools
import json
import os
import re
import shlex
import sys
import textwrap
import time
import warnings

import numpy as np

from gmmfast._datafile import DataError, column_names, parse_columns, read_table
from gmmfast._engine import INIT_METHODS, SINGLE_START_METHODS
from gmmfast._files import error_summary, format_bytes
from gmmfast._covariance_models import (COVARIANCE_MODELS, mclust_name, model_label,
                                        sklearn_layout, sklearn_name)
from gmmfast._mstep import COVARIANCE_TYPES, precisions_from_cholesky
from gmmfast._neighbours import is_neighbour_start
from gmmfast._tablewriter import write_csv
from gmmfast._grid import CRITERIA, DEFAULT_N_COMPONENTS, STATUS_OK, describe_grid
from gmmfast.plot import full_covariances  # numpy only: no matplotlib import
from gmmfast._starts import FLOOR_FACTOR

DESCRIPTION = """\
Gaussian mixture models from the command line. 'gmmfast fit' chooses the number of
components and the covariance type by an information criterion and prints the model
('gmmfast fit --bayesian' fits a variational Bayesian mixture that switches off the
components the data do not need); 'gmmfast' alone runs 'gmmfast fit' on the Old Faithful
geyser data bundled with gmmfast."""

FIT_EPILOG = """\
examples:
  gmmfast fit                                   the bundled Old Faithful data
  gmmfast fit data.csv --columns x,y --save model.npz --labels labels.csv
  gmmfast fit data.npy -k 1-20 -c full,diag --criterion icl --plot clusters.png
  gmmfast fit incomplete.csv --missing omit     empty fields, NA and NaN are missing values
  gmmfast fit data.csv --bayesian -k 20 --plot clusters.png
  gmmfast fit wine.csv --columns ^class --scale  every column but 'class', standardised
  gmmfast fit data.csv -c VVV,EEE,VEV --json -  the summary as JSON on stdout
  gmmfast predict model.npz new.csv -o labels.csv
  gmmfast sample model.npz -n 1000
  gmmfast impute incomplete.csv -o completed.csv"""


# fit --bayesian: K is an upper bound, so it may be generous (the "auto" grid's largest
# value); "full" is scikit-learn's default and the type in which pruning works best.
BAYESIAN_N_COMPONENTS = 10
BAYESIAN_COVARIANCE_TYPE = "full"

# The widest line of the tables 'fit' prints: a terminal's or an e-mail's width, with room.
MAX_WIDTH = 100


# fit --online: batches large enough that the per-batch cost is small, small enough that a
# batch of many columns stays a few tens of MB.
ONLINE_BATCH_ROWS = 10_000


# Also the README's advice: matplotlib alone, without rebuilding gmmfast for its plot extra.
MATPLOTLIB_INSTALL = "pip install matplotlib"


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
    commands = parser.add_subparsers(dest="command",
                                     metavar="{fit,predict,sample,impute}")

    fit = commands.add_parser(
        "fit", help="choose and fit a Gaussian mixture, print a summary",
        description="Fit Gaussian mixtures over a grid of n_components x covariance_type,\n"
                    "keep the best by BIC (or AIC, ICL) and print it. With --bayesian, fit\n"
                    "one variational Bayesian mixture instead: of its K components, those\n"
                    "the data do not need switch off.",
        epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("data", nargs="?", metavar="DATA",
                     help="a .csv/.tsv/.txt (header detected), .npy or .parquet file; "
                          "default: the bundled Old Faithful data (272 x 2)")
    # -k, -c and --criterion default to None so that --bayesian can tell what was given.
    fit.add_argument("-k", "--n-components", metavar="K|auto",
                     help="number of components: K, a list (2,3,5), a range (1-6) or auto "
                          f"(= {describe_grid(list(DEFAULT_N_COMPONENTS))}); default auto. "
                          "With --bayesian: K, the upper bound (default "
                          f"{BAYESIAN_N_COMPONENTS})")
    fit.add_argument("-c", "--covariance-type", metavar="T|auto",
                     help=f"{', '.join(COVARIANCE_TYPES)} or one of mclust's 14 models "
                          "(EII, VII, ..., VEV, EVV, VVV), a comma-separated list, or auto "
                          "(= all 14 of mclust's models); default auto. With --bayesian: "
                          f"one of scikit-learn's four (default {BAYESIAN_COVARIANCE_TYPE})")
    fit.add_argument("--criterion", choices=CRITERIA,
                     help="lower is better; default bic (not with --bayesian)")
    fit.add_argument("--bayesian", action="store_true",
                     help="fit one variational Bayesian mixture (BayesianGaussianMixture, "
                          "Dirichlet-process prior) instead of a search: -k is the upper "
                          "bound on the number of components, and those the data do not "
                          "need are switched off")
    fit.add_argument("--online", action="store_true",
                     help="fit one GaussianMixture (-k K, -c T) by online EM over batches "
                          "of rows read from DATA, which is never held whole: for files "
                          "larger than memory")
    fit.add_argument("--batch-rows", type=_positive_int, default=None, metavar="N",
                     help=f"rows per batch of --online (default {ONLINE_BATCH_ROWS})")
    _add_columns(fit)
    fit.add_argument("--scale", action="store_true",
                     help="standardise each column (mean 0, sd 1) for the fit; the model is "
                          "reported, saved and plotted in the original units")
    fit.add_argument("--seed", type=int, default=0, metavar="N",
                     help="random seed of the initialisations (default 0)")
    fit.add_argument("--init", choices=INIT_METHODS, default=None,
                     help="how each candidate starts (default multistart: many short runs "
                          "from diverse starts, the best continued; kmeans: one k-means "
                          "start, as scikit-learn, cheaper on large data; --bayesian "
                          "takes the single-start methods, default kmeans)")
    fit.add_argument("--prior", action="store_true",
                     help="regularise every candidate with the conjugate prior of Fraley & "
                          "Raftery (2007), mclust's priorControl() with its defaultPrior: "
                          "posterior-mode (MAP) fits that stay finite where a component "
                          "would collapse onto a few rows or a constant column; BIC uses the "
                          "log-likelihood at the MAP. Defined for EII, VII, EEI, VEI, EVI, "
                          "VVI, EEE, EEV, VEV, VVV; the other models of the grid are skipped")
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
    fit.add_argument("--json", metavar="OUT.json",
                     help="also write the whole summary as JSON for scripts: every "
                          "candidate's scores and status, the chosen model's weights, means "
                          "and covariances (original units with --scale; with --bayesian, "
                          "every component and which are in use), the data, the "
                          "warnings and the timings; missing numbers are null. '-' writes it "
                          "to standard output and the printed summary to standard error")
    _add_progress(fit)
    _add_missing_option(fit)
    fit.set_defaults(run=run_fit_command)

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
    _add_missing_option(predict)
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
    _add_impute_command(commands)
    return parser


def _add_columns(parser, default_help=" (default: every column)"):
    parser.add_argument("--columns", metavar="A,B,...",
                        help="comma-separated column names, 0-based indices or ranges of "
                             "them (0-3) to use; ^NAME, ^INDEX or ^0-3 leaves a column out "
                             "(only exclusions: every other column)" + default_help)


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
        parser.error("give a command: fit, predict, sample or impute")
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
        return list(COVARIANCE_MODELS)
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


def run_fit_command(args):
    """``gmmfast fit``; with ``--json -`` the printed summary goes to stderr, to leave
    stdout to the JSON."""
    if args.json != "-":
        _check_output_path("--json", args.json)
        return run_fit(args)
    args.json_stream = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return run_fit(args)


def _prior(args):
    """The ``prior`` of the fits that ``--prior`` asks for."""
    return "default" if args.prior else None


def run_fit(args):
    if args.online:
        return run_online_fit(args)
    if args.batch_rows is not None:
        raise UserError("--batch-rows is the batch size of --online: add --online, or leave "
                        "--batch-rows out")
    if args.bayesian:
        return run_bayesian_fit(args)
    from gmmfast._selection import progress_text, select_model

    grid = parse_n_components(args.n_components or "auto")
    types = parse_covariance_types(args.covariance_type or "auto")
    args.criterion = args.criterion or "bic"
    table = _read_fit_data(args)
    X = table.X
    n_rows = X.shape[0]
    if min(grid) > n_rows:
        what = f"{grid[0]} is" if len(grid) == 1 else f"every value ({describe_grid(grid)}) is"
        raise UserError(f"--n-components {what} larger than the number of rows ({n_rows})")
    scaling = standardisation(X, table.names) if args.scale else None
    X_fit = X if scaling is None else (X - scaling[0]) / scaling[1]
    print(format_data(table), flush=True)  # before the search, which can be long
    checks = FitChecks(args, table.names, *column_range(X))
    show_progress = _show_progress(args)

    def on_candidate(done, total, row):
        if row["status"] == STATUS_OK:
            checks.check_candidate(row)
        if show_progress:
            print(f"gmmfast: {progress_text(done, total, row)}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = select_model(X_fit, grid, types, args.criterion, random_state=args.seed,
                          init_params=args.init or "multistart", n_init=args.n_init,
                          max_iter=args.max_iter, tol=args.tol,
                          n_threads=args.threads, progress=on_candidate,
                          nan_policy=args.missing, prior=_prior(args))
    elapsed = time.perf_counter() - start
    model = result.best_estimator_
    if scaling is not None:
        model = unscaled_mixture(model, *scaling)
    print(format_fit_summary(result, model, table, grid, types, args, elapsed, checks),
          flush=True)
    if scaling is not None:
        print(format_scaling_note(scaling[1], n_rows, args.criterion), flush=True)
    checks.check_chosen(result, X)
    if args.json is not None:
        write_json_summary(args, fit_summary(result, model, table, scaling, grid, types,
                                             args, elapsed, checks))
    _write_fit_outputs(args, model, table,
                       lambda path: write_figure(path, result, model, complete_rows(X),
                                                 table.names,
                                                 search=len(result.criterion_table_) > 1))
    return 0


def _read_fit_data(args):
    """The table to fit, once every option that can be checked before reading it is."""
    if args.plot:
        _check_matplotlib("--plot")
    _check_fit_output_paths(args)
    if not args.tol >= 0:  # also refuses nan, with which EM would never converge
        raise UserError(f"--tol must be a number >= 0, got {args.tol}")
    table = read_table(args.data, parse_columns(args.columns),
                       allow_missing=args.missing == "omit",
                       progress=_ReadProgress(args.data) if _show_progress(args) else None)
    n_rows = table.X.shape[0]
    if n_rows < 2:
        raise UserError(f"{table.source}: a mixture needs at least 2 rows, got {n_rows}")
    return table


def _check_fit_output_paths(args):
    for option, path in (("--save", args.save), ("--labels", args.labels),
                         ("--plot", args.plot)):
        _check_output_path(option, path)


def _write_fit_outputs(args, model, table, draw_figure):
    """--save, --labels and --plot (``draw_figure(path)``) of a fitted model."""
    if args.save:
        from gmmfast._io import save_model

        save_model(model, args.save, extra={"columns": table.names, "source": table.source})
        print(f"\nModel written to {args.save} (load it with gmmfast.load, or use "
              f"'gmmfast predict {args.save} DATA')")
    if args.labels:
        with _output(args.labels) as out:
            n_rows = write_predictions(out, model.predict_proba, model.n_components,
                                       model.means_.dtype, table.batches(OUTPUT_BLOCK_ROWS))
        print(f"Labels and probabilities of the {n_rows} rows written to {args.labels}")
    if args.plot:
        draw_figure(args.plot)
        print(f"Figure written to {args.plot}")


# ----------------------------------------------------------------------------------------
# gmmfast fit --bayesian
# ----------------------------------------------------------------------------------------


def bayesian_options(args):
    """(upper bound K, covariance type) of ``fit --bayesian``; refuses the options of a
    search, which a single variational fit has no use for."""
    if args.criterion is not None:
        raise UserError("--criterion chooses among the candidates of a search; --bayesian "
                        "fits one model and switches off the components it does not need "
                        "(leave out --criterion)")
    if args.prior:
        raise UserError("--prior is the conjugate prior of EM fits; --bayesian has its own "
                        "priors (leave out --prior)")
    if args.scale:
        raise UserError("--scale is not available with --bayesian yet (its priors would "
                        "have to be mapped back too): standardise the columns of the file "
                        "first, or fit without --bayesian")
    text = (args.n_components or str(BAYESIAN_N_COMPONENTS)).strip()
    if not re.fullmatch(r"\d{1,9}", text) or int(text) < 1:
        raise UserError(f"--bayesian takes -k K, one number >= 1: the upper bound on the number "
                        f"of components (default {BAYESIAN_N_COMPONENTS}), got {text!r}; "
                        "the fit itself finds how many of them the data need")
    covariance_type = (args.covariance_type or BAYESIAN_COVARIANCE_TYPE).strip().lower()
    if covariance_type not in COVARIANCE_TYPES:
        raise UserError(f"--bayesian fits one covariance type: give -c "
                        f"{' | '.join(COVARIANCE_TYPES)} (default "
                        f"{BAYESIAN_COVARIANCE_TYPE}), got {covariance_type!r}")
    return int(text), covariance_type


def run_bayesian_fit(args):
    from gmmfast import BayesianGaussianMixture
    from gmmfast._compat import ConvergenceWarning

    n_components, covariance_type = bayesian_options(args)
    table = _read_fit_data(args)
    X = table.X
    print(format_data(table), flush=True)  # before the fit, which can be long
    checks = FitChecks(args, table.names, *column_range(X))
    if n_components > X.shape[0]:
        raise UserError(f"--n-components {n_components} is larger than the number of rows "
                        f"({X.shape[0]})")
    if args.init == "multistart":
        raise UserError("--init multistart is not available with --bayesian: give one of "
                        + ", ".join(SINGLE_START_METHODS))
    model = BayesianGaussianMixture(n_components=n_components,
                                    covariance_type=covariance_type, tol=args.tol,
                                    init_params=args.init or "kmeans",
                                    max_iter=args.max_iter, n_init=args.n_init,
                                    random_state=args.seed, n_threads=args.threads,
                                    nan_policy=args.missing)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Whether it converged is part of the summary.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    elapsed = time.perf_counter() - start
    print(format_bayesian_summary(model, table, args, elapsed), flush=True)
    if args.json is not None:
        write_json_summary(args, bayesian_fit_summary(model, table, args, elapsed, checks))
    _write_fit_outputs(args, model, table,
                       lambda path: write_figure(path, None, model, complete_rows(X),
                                                 table.names, search=False))
    return 0


def format_bayesian_summary(model, table, args, elapsed):
    from gmmfast._bayesian_mixture import components_in_use

    in_use = np.flatnonzero(components_in_use(model))
    n_rows, k = table.X.shape[0], model.n_components
    status = (f"converged after {model.n_iter_} iterations" if model.converged_
              else f"did NOT converge in {model.n_iter_} iterations (raise --max-iter)")
    lines = [
        f"Model: BayesianGaussianMixture(n_components={k}, covariance_type="
        f"{model.covariance_type!r}), seed {args.seed}",
        "  variational, with a Dirichlet-process prior on the weights:",
        "  the components the data do not need switch off",
        f"  {status}; lower bound {float(model.lower_bound_):.2f} (a sum over the rows)",
        f"  {len(in_use)} of {k} components in use, {k - len(in_use)} switched off",
        f"  (in use: N_k >= 1, the weight of at least one row, 1/{n_rows} = "
        f"{1 / n_rows:.2g})",
        "",
    ]
    lines.extend(format_components(model, table.names, in_use))
    lines.append("")
    lines.append(f"Time: {elapsed:.2f} s")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# gmmfast fit --online
# ----------------------------------------------------------------------------------------


def online_options(args):
    """(K, covariance type) of ``fit --online``; refuses what a single online fit over
    batches cannot do."""
    for given, option, why in (
            (args.bayesian, "--bayesian", "online EM fits a GaussianMixture"),
            (args.criterion is not None, "--criterion", "it chooses among the candidates "
                                                        "of a search"),
            (args.n_init != 1, "--n-init", "a stream is read once, from one start"),
            (args.scale, "--scale", "standardising needs a pass over the data first; "
                                    "standardise the file first"),
            (args.plot, "--plot", "drawing the clusters needs every row in memory"),
            (args.json is not None, "--json", "an online fit's summary is not written "
                                              "as JSON; use --save for the fitted model"),
            (args.data is None, "the bundled data", "--online reads a file: give DATA")):
        if given:
            raise UserError(f"{option} is not available with --online: {why}")
    text = (args.n_components or "").strip()
    if not re.fullmatch(r"\d{1,9}", text) or int(text) < 1:
        raise UserError(f"--online fits one model: give -k K, one number >= 1 (a search over "
                        f"several numbers of components needs the whole data), got "
                        f"{text or 'none'!r}")
    covariance_type = _covariance_name((args.covariance_type or "full").strip())
    return int(text), covariance_type


def run_online_fit(args):
    from gmmfast import GaussianMixture
    from gmmfast._datafile import BatchedTable

    n_components, covariance_type = online_options(args)
    batch_rows = args.batch_rows or ONLINE_BATCH_ROWS
    _check_fit_output_paths(args)
    table = BatchedTable(args.data, parse_columns(args.columns),
                         allow_missing=args.missing == "omit")
    print(f"Data: {table.describe()}, read in batches of {batch_rows} rows", flush=True)
    model = GaussianMixture(n_components, covariance_type=covariance_type,
                            init_params=args.init or "multistart",
                            random_state=args.seed, n_threads=args.threads,
                            nan_policy=args.missing, prior=_prior(args))
    progress = _StreamProgress() if _show_progress(args) else None
    start, n_rows = time.perf_counter(), 0
    low = high = None
    for X in table.batches(batch_rows):
        model.partial_fit(X)
        n_rows += X.shape[0]
        low, high = column_range(X, low, high)
        if progress is not None:
            progress(n_rows, model)
    elapsed = time.perf_counter() - start
    print(format_online_summary(model, table, n_rows, batch_rows, args, elapsed),
          flush=True)
    FitChecks(args, table.names, low, high).check_model(model)
    _write_fit_outputs(args, model, table, draw_figure=None)
    return 0


def format_online_summary(model, table, n_rows, batch_rows, args, elapsed):
    lines = [
        f"Model: GaussianMixture(n_components={model.n_components}, covariance_type="
        f"{model.covariance_type!r}{', prior=' + repr(model.prior) if args.prior else ''}),"
        f" seed {args.seed}",
        f"  online EM over {n_rows} rows in {model.n_iter_} batches of up to {batch_rows} "
        f"rows; average {'log posterior' if args.prior else 'log-likelihood'} of the last "
        f"batch {float(model.lower_bound_):.4f}",
        "",
    ]
    lines.extend(format_components(model, table.names))
    lines.append("")
    lines.append(f"Time: {elapsed:.2f} s")
    return "\n".join(lines)


class _ProgressLines:
    """Progress lines on stderr, at most one a second: work done in under a second
    prints nothing."""

    INTERVAL = 1.0

    def __init__(self):
        self.last = time.monotonic()

    def show(self, text):
        now = time.monotonic()
        if now - self.last >= self.INTERVAL:
            self.last = now
            print(f"gmmfast: {text}", file=sys.stderr, flush=True)


class _StreamProgress(_ProgressLines):
    """Rows done and the average log-likelihood of the last batch of a stream."""

    def __call__(self, n_rows, model):
        self.show(f"{n_rows} rows in {model.n_iter_} batches, average log-likelihood of "
                  f"the last batch {float(model.lower_bound_):.4f}")


class _ReadProgress(_ProgressLines):
    """How much of a data file is read."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def __call__(self, done, total):
        self.show(f"reading {self.path}: {100 * done / max(total, 1):.0f} % "
                  f"({format_bytes(done)} of {format_bytes(total)})")


# ----------------------------------------------------------------------------------------
# warnings: constant columns, variances at the reg_covar floor
# ----------------------------------------------------------------------------------------


# The criterion table's mark for a candidate with a component at the floor.
FLOOR_MARK = "~"


def column_range(X, low=None, high=None):
    """(smallest, largest) observed value of each column of X, widened by the range
    ``low``, ``high`` of earlier rows when given; NaN for a column with none observed."""
    batch_low, batch_high = np.fmin.reduce(X, axis=0), np.fmax.reduce(X, axis=0)
    if low is None:
        return batch_low, batch_high
    return np.fmin(low, batch_low), np.fmax(high, batch_high)


def columns_at_floor(model, columns):
    """The columns among ``columns`` in which some component of ``model`` has its variance
    at the reg_covar floor: the component holds a single value of that column."""
    variances = np.diagonal(full_covariances(model), axis1=1, axis2=2)[:, columns]
    at_floor = (variances <= FLOOR_FACTOR * model.reg_covar).any(axis=0)
    return [column for column, floor in zip(columns, at_floor) if floor]


def components_at_floor(model, columns):
    """The components of ``model`` whose variance, in some direction within the columns
    ``columns``, is at the reg_covar floor: they rest on a point or a line of the rows."""
    if not len(columns):
        return np.array([], dtype=np.intp)
    covariances = full_covariances(model)[:, columns][:, :, columns]
    smallest = np.linalg.eigvalsh(covariances)[:, 0]
    return np.flatnonzero(smallest <= FLOOR_FACTOR * model.reg_covar)


class FitChecks:
    """The warnings of one fit, printed on stderr as they are found and kept for --json:
    constant columns (found from the columns' range when this is built) and components
    whose variance sits at the reg_covar floor (in the columns that are not constant)."""

    def __init__(self, args, names, low, high):
        self.args = args
        self.names = names
        self.messages = []
        self.constant = [] if low is None else np.flatnonzero(low == high).tolist()
        self.informative = [j for j in range(len(names)) if j not in self.constant]
        self.candidates_at_floor = set()  # (n_components, covariance_type)
        self.chosen_at_floor = []
        # How many candidates have a component on a single value of each column.
        self.single_value_columns = collections.Counter()
        if self.constant:
            self.warn(constant_columns_message(names, self.constant, low, args.columns))

    def warn(self, message):
        print(f"gmmfast {self.args.command}: warning: {message}", file=sys.stderr,
              flush=True)
        self.messages.append(message)

    def check_candidate(self, row):
        """Note a fitted candidate (a row of the search, with its model) at the floor."""
        if len(components_at_floor(row["model"], self.informative)):
            self.candidates_at_floor.add((row["n_components"], row["covariance_type"]))
            self.single_value_columns.update(columns_at_floor(row["model"],
                                                              self.informative))

    def rows_at_floor(self, criteria):
        """The rows of the criterion table whose candidate has a component at the floor."""
        keys = zip(criteria["n_components"].tolist(), criteria["covariance_type"].tolist())
        return [i for i, key in enumerate(keys) if key in self.candidates_at_floor]

    def check_chosen(self, result, X):
        """Warn if the chosen model of a search has a component at the floor, naming the
        best candidate that has none, and name the columns of few values (of ``X``) that
        components of candidates collapsed onto."""
        self.check_single_value_columns(X, max(result.criterion_table_["n_components"]))
        criteria = result.criterion_table_
        clean = np.ones(len(criteria), dtype=bool)
        clean[self.rows_at_floor(criteria)] = False
        clean &= criteria["status"] == STATUS_OK
        if not clean.any():
            return self.check_model(result.best_estimator_, "the chosen model")
        best = np.flatnonzero(clean)[np.argmin(criteria.scores[clean])]
        k, name = criteria["n_components"][best], criteria["covariance_type"][best]
        return self.check_model(
            result.best_estimator_, "the chosen model",
            f"the best candidate without one is {model_label(name)},{k} "
            f"({criteria.criterion.upper()} {criteria.scores[best]:.2f}): -k {k} -c {name}")

    def check_single_value_columns(self, X, n_components):
        """Warn about the columns that components of candidates collapsed onto and whose
        values repeat, each shared by rows on average, in at most ``n_components`` distinct
        values: K components can each hold one value of such a column (a class label, a
        count, a code), and no search then gives them a bounded likelihood."""
        few_values = {}
        for j in self.single_value_columns:
            observed = X[:, j][~np.isnan(X[:, j])]
            n_values = len(np.unique(observed))
            if n_values <= n_components and 2 * n_values <= len(observed):
                few_values[j] = n_values
        if few_values:
            self.warn(single_value_columns_message(
                self.names, few_values, self.single_value_columns, self.args.columns))

    def check_model(self, model, what="the model",
                    remedy="fit fewer components (-k) or more rows"):
        at_floor = components_at_floor(model, self.informative)
        self.chosen_at_floor = at_floor.tolist()
        if len(at_floor):
            self.warn(floor_message(model, at_floor, what, remedy))


def constant_columns_message(names, constant, values, columns_option):
    listed = ", ".join(repr(names[j]) for j in constant)
    what = (f"column {listed} is constant (every value is {_fmt(values[constant[0]])})"
            if len(constant) == 1 else f"columns {listed} are constant")
    exclusions = ",".join(f"^{names[j]}" for j in constant)
    option = exclusions if columns_option is None else f"{columns_option},{exclusions}"
    return (f"{what}: every component's variance there is the reg_covar floor, which "
            "inflates the likelihood and makes the scores meaningless; leave "
            f"{'it' if len(constant) == 1 else 'them'} out with "
            f"--columns {shlex.quote(option)}")


def single_value_columns_message(names, few_values, candidates, columns_option):
    listed = ", ".join(f"{names[j]!r} ({n} distinct values, {candidates[j]} candidates)"
                       for j, n in few_values.items())
    exclusions = ",".join(f"^{names[j]}" for j in few_values)
    option = exclusions if columns_option is None else f"{columns_option},{exclusions}"
    return (f"components collapsed onto single values of {listed}: if "
            f"{'it is' if len(few_values) == 1 else 'they are'} a label, a count or a "
            f"code rather than a measurement, leave {'it' if len(few_values) == 1 else 'them'} "
            f"out with --columns {shlex.quote(option)}")


def floor_message(model, components, what, remedy):
    listed = ", ".join(str(k) for k in components)
    which = (f"component {listed} of {what} has" if len(components) == 1
             else f"components {listed} of {what} have")
    return (f"{which} a variance at the reg_covar floor ({model.reg_covar:g}): "
            f"{'it rests' if len(components) == 1 else 'they rest'} on a point or a line "
            "of the rows, where the likelihood grows without meaning; " + remedy)


def standardisation(X, names):
    """The columns' means and standard deviations (as StandardScaler's: ddof 0), over the
    observed entries of each column when some are missing (``--missing omit``)."""
    with warnings.catch_warnings():
        # A column with no observed value gets NaN here and its own error from the fit.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=0)
        sd = np.nanstd(X, axis=0)
    constant = [name for name, s in zip(names, sd) if s == 0]
    if constant:
        raise UserError(f"--scale: column {constant[0]!r} is constant (sd 0), so it cannot "
                        f"be standardised; leave it out with --columns ^{constant[0]}")
    return mean, sd


def unscaled_mixture(model, mean, sd):
    """The mixture on the original columns that ``model``, fitted on (X − mean) / sd, is.

    x = mean + sd·z maps N(μ, Σ) exactly to N(mean + sd·μ, S Σ S) with S = diag(sd), and
    the precision's Cholesky factor U to S⁻¹U. A spherical model becomes a diagonal one
    (its one variance scaled per column).
    """
    original = copy.deepcopy(model)
    # Rescaling the columns keeps the arrays' layout but not an mclust model's equal
    # volumes, shapes or orientations: the model mapped back is one of the layout's type.
    covariance_type = sklearn_layout(model.covariance_type)
    if covariance_type != model.covariance_type:
        original.set_params(covariance_type=covariance_type)
        for name in ("volumes_", "shapes_", "orientations_"):
            vars(original).pop(name, None)
    covariances, factors = model.covariances_, model.precisions_cholesky_
    if covariance_type == "full":
        covariances = covariances * np.outer(sd, sd)
        factors = factors / sd[None, :, None]
    elif covariance_type == "tied":
        covariances = covariances * np.outer(sd, sd)
        factors = factors / sd[:, None]
    else:
        if covariance_type == "spherical":
            covariances, factors = covariances[:, None], factors[:, None]
            original.set_params(covariance_type="diag")
        covariances = covariances * sd**2
        factors = factors / sd
    original.means_ = mean + model.means_ * sd
    original.covariances_ = covariances
    original.precisions_cholesky_ = factors
    original.precisions_ = precisions_from_cholesky(factors, original.covariance_type)
    return original


def criterion_shift(sd, n_rows):
    """What every candidate's BIC, AIC and ICL gains on the original units over the
    standardised ones: the log-density of each row falls by sum(log sd)."""
    return float(2 * n_rows * np.log(sd).sum())


def format_scaling_note(sd, n_rows, criterion):
    shift = criterion_shift(sd, n_rows)
    note = (f"--scale: fitted on the standardised columns; the components above are in "
            f"the original units. The {criterion.upper()} values are those of the "
            f"standardised data: on the original units each is {shift:+.2f} (2 N sum(log sd)), "
            "the same for every candidate, so the choice is the same.")
    return "\n" + "\n".join(_wrap(note, ""))


def format_fit_summary(result, model, table, grid, types, args, elapsed, checks):
    """The summary after the "Data:" line; ``model`` is the chosen model as reported,
    ``checks`` the search's :class:`FitChecks` (which candidates the grid flags)."""
    chosen = result.best_estimator_
    criteria = result.criterion_table_
    best = result.best_index_
    name = args.criterion.upper()
    lines = []
    n_candidates = len(criteria)
    if n_candidates > 1:
        lines.extend(format_search(grid, types, n_candidates, name, args.seed))
        lines.append("")
        legend = ["* chosen"]
        if not criteria["converged"][criteria["status"] == "ok"].all():
            legend.append("! did not converge")
        if (criteria["status"] == "skipped").any():
            legend.append("- skipped: more components than rows, or no prior for the model"
                          if args.prior else "- more components than rows")
        marks = {i: FLOOR_MARK for i in checks.rows_at_floor(criteria)}
        if marks:
            legend.append(f"{FLOOR_MARK} a variance at the reg_covar floor")
        lines.extend(_wrap(f"{name} (lower is better; {', '.join(legend)}):", "", "  "))
        lines.append(criteria.format(MAX_WIDTH, marks))
        lines.append("")
        lines.append(format_best_models(criteria))
        lines.extend(format_left_out(criteria))
        lines.append("")
    iterations = f"{chosen.n_iter_} iteration{'s' * (chosen.n_iter_ != 1)}"
    if went_on_from_screening(criteria, best):
        status = (f"converged {iterations} after the screening" if chosen.converged_
                  else f"did NOT converge in {iterations} after the screening")
    else:
        status = (f"converged after {iterations}" if chosen.converged_
                  else f"did NOT converge in {iterations}")
    lines.append(f"Chosen model: n_components={chosen.n_components}, covariance_type="
                 f"{chosen.covariance_type!r}, seed {args.seed}"
                 + (", MAP under the default conjugate prior" if args.prior else ""))
    lines.extend(format_start(criteria, best))
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


def format_start(criteria, best):
    """The line on the chosen model's start, under the multi-start strategy."""
    gain = criteria["gain_over_kmeans"][best]
    if np.isnan(gain):
        return []
    start = criteria["start"][best]
    if start == "kmeans":
        return ["  start: the plain k-means start (no other start did better)"]
    if round(gain, 2) == 0:
        return [f"  start: {start}, as good as the plain k-means start (to 0.01 in "
                "log-likelihood)"]
    if gain < 0:
        # Only a collapsed fit outranks the kept one on likelihood (see gmmfast._starts).
        return [f"  start: {start}; the plain k-means start ended {-gain:.2f} higher in "
                "log-likelihood,",
                "    but on a collapsed component (a variance held up by reg_covar alone, or "
                "below the rounding)"]
    return [f"  start: {start}, which beat the plain k-means start by {gain:.2f} in "
            f"log-likelihood"]


def went_on_from_screening(criteria, best):
    """Whether the chosen fit continued from a start of the multi-start screening (its
    iterations are then counted after the screening's)."""
    start = criteria["start"][best]
    return (not np.isnan(criteria["gain_over_kmeans"][best]) and start != "kmeans"
            and not is_neighbour_start(start))


def format_data(table):
    """The "Data:" line; when it is too long, the column names on indented lines below."""
    text = f"Data: {table.describe()}"
    names = f" ({', '.join(table.names)})"
    if len(text) <= MAX_WIDTH or not text.endswith(names):
        return text
    return "\n".join([text[:-len(names)] + ":"] + _wrap(", ".join(table.names), "  "))


def format_search(grid, types, n_candidates, criterion, seed):
    """The "Search:" line; when it is too long, wrapped onto indented lines, the count of
    candidates kept whole."""
    grid_text = (f"Search: n_components {describe_grid(grid)} x covariance_type "
                 f"{', '.join(types)}")
    count = f"= {n_candidates} candidates, by {criterion}, seed {seed}"
    lines = _wrap(grid_text, "", "  ")
    if len(lines[-1]) + 1 + len(count) <= MAX_WIDTH:
        lines[-1] += " " + count
    else:
        lines.append("  " + count)
    return lines


def _wrap(text, indent, subsequent_indent=None):
    """``text`` as lines of at most ``MAX_WIDTH`` characters, broken at spaces only."""
    return textwrap.wrap(text, MAX_WIDTH, initial_indent=indent,
                         subsequent_indent=indent if subsequent_indent is None
                         else subsequent_indent,
                         break_on_hyphens=False, break_long_words=False)


def format_best_models(criteria, n_best=3):
    """The best ``n_best`` candidates the search chose from, the first with its criterion,
    the others with their difference to it: "Best by BIC: VVV (full),2 2322.19 | EEE
    (tied),4 +2.02 | …"."""
    ok = np.flatnonzero(criteria.choosable)
    scores = criteria.scores
    # The chosen candidate first, also when another ties with it.
    order = sorted(ok, key=lambda i: (scores[i], i != criteria.best_index))[:n_best]
    best = scores[order[0]]
    parts = [f"{model_label(criteria['covariance_type'][i])},{criteria['n_components'][i]} "
             + (f"{best:.2f}" if j == 0 else f"{scores[i] - best:+.2f}")
             for j, i in enumerate(order)]
    return f"Best by {criteria.criterion.upper()}: " + " | ".join(parts)


def format_left_out(criteria):
    """The line on the fitted candidates the search did not choose from, if any."""
    left_out = int(np.sum((criteria["status"] == STATUS_OK) & ~criteria.choosable))
    if not left_out:
        return []
    which = "candidate" if left_out == 1 else "candidates"
    return _wrap(f"Not chosen: {left_out} {which} whose every start collapsed a component "
                 "(a variance held up by reg_covar alone, or below the rounding of a column's "
                 "values), where the likelihood has no bound or describes the rounding",
                 "", "  ")


# Every column of the criterion table that a script may want, in this order.
JSON_CANDIDATE_FIELDS = ("n_components", "covariance_type", "log_likelihood", "n_parameters",
                         "bic", "aic", "icl", "n_iter", "converged", "fit_seconds", "status",
                         "message")


def fit_summary(result, model, table, scaling, grid, types, args, elapsed, checks):
    """The summary of a search as plain Python values (``model``: the chosen model as
    reported, in the original units with ``--scale``; ``checks``: the search's
    :class:`FitChecks`)."""
    criteria = result.criterion_table_
    at_floor = set(checks.rows_at_floor(criteria))
    candidates = []
    for i in range(len(criteria)):
        row = {name: (criteria[name][i] if name in criteria else None)
               for name in JSON_CANDIDATE_FIELDS}
        row["mclust_name"] = mclust_name(row["covariance_type"])
        row["sklearn_name"] = sklearn_name(row["covariance_type"])
        row["at_reg_covar_floor"] = (i in at_floor if row["status"] == STATUS_OK
                                     else None)
        candidates.append(row)
    return {
        "kind": "search",
        "data": data_summary(table, args, checks, scaling),
        "search": {"n_components": grid, "covariance_types": types,
                   "criterion": args.criterion, "seed": args.seed, "n_init": args.n_init,
                   "max_iter": args.max_iter, "tol": args.tol,
                   "prior": _prior(args)},
        "candidates": candidates,
        "best_index": criteria.best_index,
        "model": {"n_components": model.n_components,
                  "covariance_type": model.covariance_type,
                  "fitted_covariance_type": result.best_estimator_.covariance_type,
                  "converged": model.converged_, "n_iter": model.n_iter_,
                  "weights": model.weights_, "means": model.means_,
                  "covariances": model.covariances_,
                  "components_at_reg_covar_floor": checks.chosen_at_floor},
        "warnings": checks.messages,
        "timings": {"search_seconds": elapsed,
                    "candidate_seconds": float(np.sum(criteria["fit_seconds"]))},
    }


def data_summary(table, args, checks, scaling=None):
    """The "data" part of a JSON summary: the table read, its constant columns and, with
    ``--scale``, the standardisation."""
    n_rows = table.X.shape[0]
    return {"source": table.source, "n_rows": n_rows, "n_columns": table.X.shape[1],
            "columns": table.names, "missing": args.missing,
            "constant_columns": [table.names[j] for j in checks.constant],
            "scaling": None if scaling is None else {
                "mean": scaling[0], "sd": scaling[1],
                "criterion_shift": criterion_shift(scaling[1], n_rows)}}


def bayesian_fit_summary(model, table, args, elapsed, checks):
    """The summary of ``fit --bayesian`` as plain Python values: the data, the fit's
    settings and every component of the fitted model (those switched off included, with
    which are in use), the warnings and the time."""
    from gmmfast._bayesian_mixture import components_in_use

    in_use = components_in_use(model)
    return {
        "kind": "bayesian",
        "data": data_summary(table, args, checks),
        "fit": {"estimator": type(model).__name__, "n_components": model.n_components,
                "covariance_type": model.covariance_type,
                "weight_concentration_prior_type": model.weight_concentration_prior_type,
                "seed": args.seed, "n_init": args.n_init, "max_iter": args.max_iter,
                "tol": args.tol},
        "model": {"n_components": model.n_components,
                  "covariance_type": model.covariance_type,
                  "converged": model.converged_, "n_iter": model.n_iter_,
                  "lower_bound": model.lower_bound_,
                  "n_components_in_use": int(in_use.sum()), "in_use": in_use,
                  "weights": model.weights_, "means": model.means_,
                  "covariances": model.covariances_,
                  "weight_concentration": model.weight_concentration_,
                  "mean_precision": model.mean_precision_,
                  "degrees_of_freedom": model.degrees_of_freedom_,
                  "priors": {name: getattr(model, f"{name}_prior_") for name in (
                      "weight_concentration", "mean_precision", "mean",
                      "degrees_of_freedom", "covariance")}},
        "warnings": checks.messages,
        "timings": {"fit_seconds": elapsed},
    }


def plain_json(value):
    """``value`` with NumPy scalars and arrays as Python numbers and lists, and NaN and
    infinities as None (JSON has no literal for them)."""
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_json(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.str_):
        return str(value)
    return value


def write_json_summary(args, summary):
    """--json: the summary to a file, or to the stdout that ``run_fit_command`` kept."""
    text = json.dumps(plain_json(summary), indent=1, allow_nan=False) + "\n"
    if args.json == "-":
        args.json_stream.write(text)
        args.json_stream.flush()
        return
    with open(args.json, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"Summary written to {args.json} (JSON)")


def _fmt(value):
    return f"{value:.4g}"


def format_components(model, names, components=None):
    """One row per component: weight, then mean and standard deviation of each feature.

    With two features and full or tied covariances, also their correlation. When that
    table would be wider than ``MAX_WIDTH``, one line per (component, feature) instead.
    ``components``: the indices of the components to show, "in use" (default: all).
    """
    covariances = full_covariances(model)
    sds = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    n_features = model.means_.shape[1]
    shown = range(model.n_components) if components is None else components
    heading = "Components" if components is None else "Components in use"
    lines = [f"{heading} (mean and standard deviation of each column):"]
    width = max(12, *(len(n) + 2 for n in names))
    correlation = (n_features == 2
                   and sklearn_layout(model.covariance_type) in ("full", "tied"))
    if 13 + 2 * width * n_features + 13 * correlation <= MAX_WIDTH:
        header = f"{'':>4} {'':>8}" + "".join(f"{n:>{width + (width + len(n)) // 2}}"
                                              f"{'':>{width - (width + len(n)) // 2}}"
                                              for n in names)
        sub = f"{'':>4} {'weight':>8}" + "".join(f"{'mean':>{width}}{'sd':>{width}}" for _ in names)
        if correlation:
            sub += f"{'correlation':>13}"
        lines += [header.rstrip(), sub]
        for k in shown:
            row = f"{k:>4} {model.weights_[k]:>8.4f}"
            row += "".join(f"{_fmt(model.means_[k, j]):>{width}}{_fmt(sds[k, j]):>{width}}"
                           for j in range(n_features))
            if correlation:
                rho = covariances[k, 0, 1] / (sds[k, 0] * sds[k, 1])
                row += f"{rho:>13.3f}"
            lines.append(row)
        return lines
    width = max(8, *(len(n) for n in names))
    for k in shown:
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
        raise UserError(f"{option} needs matplotlib, which is not installed: "
                        f"{MATPLOTLIB_INSTALL}") from None


# --plot draws the scatterplot matrix of every pair of columns up to this many columns
# (beyond, the panels are too small to read); the first two principal axes otherwise.
MAX_PAIRS_COLUMNS = 6


# Relative to the clusters' panel.
CRITERION_PANEL_WIDTH = 1.45


def write_figure(path, result, model, X, names, search):
    """The clusters of ``model`` and the samples' uncertainty (and, after a search, the
    criterion): a scatterplot matrix beside the others for 3 to ``MAX_PAIRS_COLUMNS``
    columns, one row of panels otherwise. Returns the figure written."""
    from matplotlib.figure import Figure

    from gmmfast.plot import plot_clusters, plot_criterion, plot_uncertainty

    # A bare Figure (no pyplot): no GUI backend, no global state, works headless.
    if 2 < X.shape[1] <= MAX_PAIRS_COLUMNS:
        figure = Figure(figsize=(16, 8.5), layout="constrained")
        pairs, side = figure.subfigures(1, 2, width_ratios=[1.5, 1])
        plot_clusters(model, X, ax=pairs, feature_names=names, features="pairs")
        # One subfigure per panel: the colour bar of one and the legend of the other
        # are laid out separately instead of sharing a column of the grid.
        panels = [panel.subplots() for panel in np.atleast_1d(side.subfigures(1 + search, 1))]
    else:
        # The criterion panel's legend of up to 14 models sits beside it: widen that panel.
        widths = [1, 1] + [CRITERION_PANEL_WIDTH] * search
        figure = Figure(figsize=(5.5 * sum(widths), 4.8), layout="constrained")
        panels = figure.subplots(1, 2 + search, squeeze=False, width_ratios=widths)[0]
        plot_clusters(model, X, ax=panels[0], feature_names=names)
        panels = panels[1:]
    plot_uncertainty(model, X, ax=panels[0], feature_names=names)
    if search:
        plot_criterion(result, ax=panels[1])
    figure.savefig(path, dpi=110)
    return figure


# ----------------------------------------------------------------------------------------
# gmmfast predict / sample
# ----------------------------------------------------------------------------------------


class _output:
    """A context manager yielding a binary stream: the file ``path``, or stdout for None."""

    def __init__(self, path):
        self.path = path
        self.stream = None

    def __enter__(self):
        if self.path is None or self.path == "-":
            sys.stdout.flush()
            return sys.stdout.buffer
        self.stream = open(self.path, "wb")
        return self.stream

    def __exit__(self, *exc):
        if self.stream is not None:
            self.stream.close()
        else:
            sys.stdout.buffer.flush()


# Rows per block of output: a few MB of text at a time, however many rows.
OUTPUT_BLOCK_ROWS = 65536


def write_predictions(out, predict_proba, n_components, dtype, batches):
    """CSV of ``label, p_0, …, p_{K−1}`` of the rows of ``batches`` (arrays of rows, given
    to ``predict_proba`` as C-contiguous arrays of ``dtype``), computed batch by batch
    (never N × K at once); returns the number of rows.

    The label is the column of the largest probability written (the first of equals):
    one pass over the rows instead of a second for ``predict``.
    """
    n_rows = 0

    def blocks():
        nonlocal n_rows
        for rows in batches:
            rows = np.ascontiguousarray(rows, dtype=dtype)
            n_rows += rows.shape[0]
            probabilities = predict_proba(rows)
            yield [probabilities.argmax(axis=1), *probabilities.T]

    write_csv(out, ["label"] + [f"p_{k}" for k in range(n_components)], blocks())
    return n_rows


def _load_model(path):
    """The :class:`~gmmfast._saved_mixture.SavedMixture` of a file and the column names
    ``fit --save`` stored with it (or None)."""
    from gmmfast._saved_mixture import SavedMixture

    if not os.path.exists(path):
        raise UserError(f"no such model file: {path}")
    model = SavedMixture(path)
    columns = model.metadata["extra"].get("columns")
    n_features = model.means.shape[1]
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
    table = read_table(args.data, columns, allow_missing=args.missing == "omit")
    n_features = model.means.shape[1]
    if table.X.shape[1] != n_features:
        raise UserError(f"{table.source} has {table.X.shape[1]} columns but the model was "
                        f"fitted on {n_features}"
                        + (f" ({', '.join(saved_columns)})" if saved_columns else "")
                        + "; choose them with --columns")
    with _output(args.output) as out:
        write_predictions(out, functools.partial(model.probabilities, nan_policy=args.missing),
                          model.n_components, model.means.dtype,
                          table.batches(OUTPUT_BLOCK_ROWS))
    return 0


def run_sample(args):
    model, saved_columns = _load_model(args.model)
    # The samples are drawn per component then stacked (two copies), with int64 labels.
    n_features = model.means.shape[1]
    _check_fits_in_memory(args.n_samples * (2 * n_features * model.means.itemsize + 8),
                          f"-n {args.n_samples}: the samples")
    X, labels = model.sample(args.n_samples, args.seed)
    names = saved_columns or [f"x{i}" for i in range(X.shape[1])]
    blocks = ([*X[start:start + OUTPUT_BLOCK_ROWS].T, labels[start:start + OUTPUT_BLOCK_ROWS]]
              for start in range(0, len(X), OUTPUT_BLOCK_ROWS))
    with _output(args.output) as out:
        write_csv(out, list(names) + ["component"], blocks)
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


# ----------------------------------------------------------------------------------------
# missing values: fit --missing, gmmfast impute
# ----------------------------------------------------------------------------------------


def _add_missing_option(command):
    command.add_argument("--missing", choices=("raise", "omit"), default="raise",
                         help="what a missing value (an empty field, NA, NaN) means: "
                              "'raise' (the default) refuses the file; 'omit' uses the "
                              "observed values of each row (fit: EM over them; predict: "
                              "the mixture's marginal over them)")


def complete_rows(X):
    """The rows of X without a missing value: what a figure of the data can show."""
    complete = X[~np.isnan(X).any(axis=1)]
    if not len(complete):
        raise UserError("--plot: no row of the data is complete, so there is nothing to "
                        "draw; fill the missing values in with 'gmmfast impute' first")
    return complete


def _add_impute_command(commands):
    impute = commands.add_parser(
        "impute", help="fill in missing values from a Gaussian mixture",
        description="Fit a Gaussian mixture to the observed values (the model chosen by "
                    "BIC, as 'fit' does) and write the table with every missing value "
                    "(an empty field, NA, NaN) replaced by its conditional mean given the "
                    "row's observed values, as CSV (or .npy for an OUT ending in .npy).")
    impute.add_argument("data", metavar="DATA",
                        help="a .csv/.tsv/.txt, .npy or .parquet file")
    _add_columns(impute)
    impute.add_argument("-k", "--n-components", default="auto", metavar="K|auto",
                        help="numbers of components to try: 3, 2,3,5, 1-6 or auto (1-10)")
    impute.add_argument("-c", "--covariance-type", default="auto", metavar="T|auto",
                        help="covariance models to try: one of scikit-learn's four or "
                             "mclust's 14 names, a list, or auto (all 14)")
    impute.add_argument("--sample-posterior", action="store_true",
                        help="draw each missing value from its conditional distribution "
                             "instead of taking its mean")
    impute.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed (default 0)")
    impute.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="threads (default: all cores)")
    impute.add_argument("-o", "--output", metavar="OUT",
                        help="write to this file (.csv, or .npy) instead of standard output")
    impute.set_defaults(run=run_impute)


def run_impute(args):
    from gmmfast import GaussianMixtureIC, GaussianMixtureImputer

    _check_output_path("--output", args.output)
    search = GaussianMixtureIC(n_components=parse_n_components(args.n_components),
                               covariance_type=parse_covariance_types(args.covariance_type),
                               random_state=args.seed, n_threads=args.threads)
    table = read_table(args.data, parse_columns(args.columns), allow_missing=True)
    imputer = GaussianMixtureImputer(search, sample_posterior=args.sample_posterior,
                                     random_state=args.seed, n_threads=args.threads)
    completed = imputer.fit_transform(table.X)
    if args.output is not None and args.output.lower().endswith(".npy"):
        from gmmfast._model_file import write_atomically

        write_atomically(args.output, lambda f: np.save(f, completed))
    else:
        blocks = ([*completed[start:start + OUTPUT_BLOCK_ROWS].T]
                  for start in range(0, len(completed), OUTPUT_BLOCK_ROWS))
        with _output(args.output) as out:
            write_csv(out, table.names, blocks)
    if args.output is not None:
        n_missing = int(np.isnan(table.X).sum())
        chosen = imputer.estimator_
        print(f"{n_missing} missing value{'s' * (n_missing != 1)} of {table.describe()} "
              f"filled in from a mixture of {chosen.n_components_} "
              f"component{'s' * (chosen.n_components_ != 1)} "
              f"({chosen.covariance_type_} covariances); written to {args.output}")
    return 0

