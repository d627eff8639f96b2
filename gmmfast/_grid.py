"""The vocabulary of a model search: its criteria, its default numbers of components, how
a grid is described and the status of a candidate. Shared by model selection and the
command line, whose parser is built without importing the estimators (which import
scikit-learn)."""

CRITERIA = ("bic", "aic", "icl")
DEFAULT_N_COMPONENTS = tuple(range(1, 11))

STATUS_OK, STATUS_SKIPPED, STATUS_FAILED = "ok", "skipped", "failed"


def describe_grid(grid):
    if len(grid) > 2 and grid == list(range(grid[0], grid[-1] + 1)):
        return f"{grid[0]}..{grid[-1]}"
    return ", ".join(map(str, grid))
