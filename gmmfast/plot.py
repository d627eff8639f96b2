"""Plots of fitted Gaussian mixtures (matplotlib, the optional extra ``gmmfast[plot]``).

- :func:`plot_clusters`: the samples coloured by component, one covariance ellipse per
  component at 1 and 2 standard deviations, the means marked (for a Bayesian mixture, the
  components in use);
- :func:`plot_criterion`: the criterion of a search against ``n_components``, one line per
  covariance type, the chosen model marked;
- :func:`plot_density`: contours of the log-density.

Data with more than two features are shown in a plane: a chosen pair of features
(``features=(i, j)``) or, by default, the first two principal axes of X. The mixture drawn
there is the exact marginal of the model in that plane (a linear projection of a Gaussian
mixture is a Gaussian mixture). One feature is shown as a histogram with the component
densities. matplotlib is imported only when a function is called.
"""

import numpy as np
from scipy.special import logsumexp

from gmmfast._covariance_models import model_label, sklearn_layout

__all__ = ["plot_clusters", "plot_criterion", "plot_density"]

MATPLOTLIB_MISSING = ("gmmfast.plot needs matplotlib, which is not installed: "
                      "pip install 'gmmfast[plot]' (or pip install matplotlib)")


def _axes(ax):
    """``ax``, or the axes of a new pyplot figure."""
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(MATPLOTLIB_MISSING) from None
    return plt.subplots()[1]


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(MATPLOTLIB_MISSING) from None


def _mixture(model):
    """The fitted GaussianMixture inside ``model`` (itself, or a search's best model)."""
    return getattr(model, "best_estimator_", model)


def _components_shown(model):
    """The indices of the components to draw: all, but only those in use for a Bayesian
    mixture (the others carry no data and sit at the prior)."""
    from gmmfast._bayesian_mixture import BayesianGaussianMixture, components_in_use

    if isinstance(model, BayesianGaussianMixture):
        return np.flatnonzero(components_in_use(model))
    return np.arange(model.n_components)


def _colors(n):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n > 20:
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def full_covariances(model):
    """(K, D, D) covariance matrices of a fitted mixture, whatever its covariance type."""
    cov = np.asarray(model.covariances_, dtype=np.float64)
    k, d = model.means_.shape
    layout = sklearn_layout(model.covariance_type)
    if layout == "full":
        return cov
    if layout == "tied":
        return np.broadcast_to(cov, (k, d, d)).copy()
    if layout == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


class _Plane:
    """A linear map of the feature space onto two plotting axes: y = (x − origin) Aᵀ."""

    def __init__(self, X, features, feature_names):
        n_features = X.shape[1]
        names = (list(feature_names) if feature_names is not None
                 else [f"x{i}" for i in range(n_features)])
        if features is None and n_features == 2:
            features = (0, 1)
        if features is not None:
            i, j = (int(f) for f in features)
            if not (0 <= i < n_features and 0 <= j < n_features) or i == j:
                raise ValueError(f"features must be two distinct indices in "
                                 f"[0, {n_features}), got {features!r}")
            self.matrix = np.eye(n_features)[[i, j]]
            self.origin = np.zeros(n_features)
            self.labels = (names[i], names[j])
            return
        # First two principal axes of X: the plane in which the data vary most.
        X = np.asarray(X, dtype=np.float64)
        self.origin = X.mean(axis=0)
        covariance = np.cov(X, rowvar=False)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1][:2]
        axes = vectors[:, order].T
        # A deterministic sign: the largest loading of each axis is positive.
        signs = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
        self.matrix = axes * signs[:, None]
        share = values[order] / values.sum()
        self.labels = tuple(f"principal axis {i + 1} ({100 * s:.0f}% of variance)"
                            for i, s in enumerate(share))

    def points(self, X):
        return (np.asarray(X, dtype=np.float64) - self.origin) @ self.matrix.T

    def mixture(self, model):
        """(weights, means (K, 2), covariances (K, 2, 2)) of the model's marginal here."""
        means = (np.asarray(model.means_, dtype=np.float64) - self.origin) @ self.matrix.T
        covariances = self.matrix @ full_covariances(model) @ self.matrix.T
        return np.asarray(model.weights_, dtype=np.float64), means, covariances


def _check_X(model, X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array, got shape {X.shape}")
    if X.shape[1] != model.means_.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features, but the model has "
                         f"{model.means_.shape[1]}")
    return X


def _ellipse(mean, covariance, n_std, **kwargs):
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, 0.0)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    return Ellipse(mean, 2 * n_std * np.sqrt(values[1]), 2 * n_std * np.sqrt(values[0]),
                   angle=angle, **kwargs)


def plot_clusters(model, X, ax=None, *, features=None, n_std=(1, 2), feature_names=None,
                  point_size=12):
    """Samples coloured by their most likely component, covariance ellipses, means.

    Parameters
    ----------
    model : GaussianMixture, BayesianGaussianMixture or GaussianMixtureIC
        A fitted mixture (a search draws its chosen model; a Bayesian mixture the
        components in use, see ``components_in_use``).
    X : array-like (n_samples, n_features)
        The samples to draw (usually the training data).
    ax : matplotlib Axes, optional
        Where to draw; a new pyplot figure by default.
    features : pair of int, optional
        The two features to show when X has more than two; default: the first two
        principal axes of X.
    n_std : sequence of float, default=(1, 2)
        One ellipse per value: the contour at that many standard deviations (solid for the
        first, dashed for the others).
    feature_names : sequence of str, optional
        Axis labels (default ``model.feature_names_in_`` if fitted on named columns).

    Returns
    -------
    ax : the matplotlib Axes. It holds one scatter collection (the samples), one line
    (the means, "+" markers) and ``K * len(n_std)`` ellipse patches (K the components
    drawn).
    """
    _require_matplotlib()
    model = _mixture(model)
    X = _check_X(model, X)
    names = feature_names if feature_names is not None else getattr(
        model, "feature_names_in_", None)
    ax = _axes(ax)
    labels = model.predict(X)
    colors = _colors(model.n_components)
    shown = _components_shown(model)
    if X.shape[1] == 1:
        return _plot_1d(model, X, ax, labels, colors, names, shown)
    plane = _Plane(X, features, names)
    Y = plane.points(X)
    point_colors = np.asarray(colors)[labels]
    ax.scatter(Y[:, 0], Y[:, 1], c=point_colors, s=point_size, alpha=0.6, linewidths=0)
    _, means, covariances = plane.mixture(model)
    for k in shown:
        for rank, n in enumerate(n_std):
            ax.add_patch(_ellipse(means[k], covariances[k], n, fill=False,
                                  edgecolor=colors[k], linewidth=2.0 if rank == 0 else 1.2,
                                  linestyle="-" if rank == 0 else "--"))
    ax.plot(means[shown, 0], means[shown, 1], "k+", markersize=14, markeredgewidth=2.5,
            label="component means")
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])
    ax.set_title(f"{_count_text(model, shown)}, {model.covariance_type} covariance "
                 f"(ellipses at {', '.join(f'{n:g}' for n in n_std)} sd)")
    ax.autoscale_view()
    return ax


def _count_text(model, shown):
    """"3 components", or "3 of 10 components in use" when some are not drawn."""
    total = model.n_components
    if len(shown) < total:
        return f"{len(shown)} of {total} components in use"
    return f"{total} component{'s' * (total != 1)}"


def _plot_1d(model, X, ax, labels, colors, names, shown):
    x = X[:, 0]
    ax.hist(x, bins="auto", density=True, color="0.8", label="data")
    grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 400)
    variances = full_covariances(model)[:, 0, 0]
    densities = (model.weights_[:, None] / np.sqrt(2 * np.pi * variances[:, None])
                 * np.exp(-0.5 * (grid - model.means_[:, :1]) ** 2 / variances[:, None]))
    for k in shown:
        ax.plot(grid, densities[k], color=colors[k], label=f"component {k}")
    ax.plot(grid, densities.sum(axis=0), "k-", linewidth=2, label="mixture")
    ax.set_xlabel(names[0] if names is not None else "x0")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def plot_criterion(result, ax=None):
    """The search's criterion against ``n_components``, one line per covariance type.

    ``result`` is a fitted :class:`gmmfast.GaussianMixtureIC` (or its
    ``criterion_table_``). Skipped and failed candidates are left out; the chosen model is
    marked with a star. Returns the Axes: one line per covariance type plus one for the
    star.
    """
    _require_matplotlib()
    table = getattr(result, "criterion_table_", result)
    ax = _axes(ax)
    ok = table["status"] == "ok"
    types = list(dict.fromkeys(table["covariance_type"].tolist()))
    for covariance_type in types:
        rows = ok & (table["covariance_type"] == covariance_type)
        ax.plot(table["n_components"][rows], table.scores[rows], marker="o",
                label=model_label(covariance_type))
    if table.best_index is not None:
        best = table.best_index
        ax.plot([table["n_components"][best]], [table.scores[best]], linestyle="none",
                marker="*", markersize=18, color="gold", markeredgecolor="k",
                label=f"chosen: {table['n_components'][best]} components, "
                      f"{model_label(table['covariance_type'][best])}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("n_components")
    ax.set_ylabel(f"{table.criterion.upper()} (lower is better)")
    ax.set_title(f"{table.criterion.upper()} of every candidate")
    ax.legend(title="covariance_type")
    return ax


def plot_density(model, X, ax=None, *, features=None, feature_names=None, levels=12,
                 resolution=200, show_points=True):
    """Contours of the log-density of the mixture over the range of X.

    With more than two features the density drawn is the model's exact marginal density in
    the plane shown (a pair of features, or the first two principal axes of X). Returns
    the Axes; its contour set is ``ax.collections`` (with the samples' scatter first when
    ``show_points``).
    """
    _require_matplotlib()
    model = _mixture(model)
    X = _check_X(model, X)
    names = feature_names if feature_names is not None else getattr(
        model, "feature_names_in_", None)
    ax = _axes(ax)
    if X.shape[1] == 1:
        x = X[:, 0]
        grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), resolution)
        ax.plot(grid, model.score_samples(grid[:, None].astype(model.means_.dtype)), "k-")
        ax.set_xlabel(names[0] if names is not None else "x0")
        ax.set_ylabel("log-density")
        return ax
    plane = _Plane(X, features, names)
    Y = plane.points(X)
    low, high = Y.min(axis=0), Y.max(axis=0)
    margin = 0.1 * np.maximum(high - low, 1e-12)
    gx, gy = np.meshgrid(np.linspace(low[0] - margin[0], high[0] + margin[0], resolution),
                         np.linspace(low[1] - margin[1], high[1] + margin[1], resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    log_density = _log_density_2d(grid, *plane.mixture(model)).reshape(gx.shape)
    if show_points:
        ax.scatter(Y[:, 0], Y[:, 1], s=4, c="0.5", alpha=0.5, linewidths=0)
    contours = ax.contour(gx, gy, log_density, levels=levels, cmap="viridis")
    ax.clabel(contours, fontsize=7, fmt="%.1f")
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])
    ax.set_title("log-density")
    return ax


def _log_density_2d(points, weights, means, covariances):
    """log Σ_k π_k N(y | μ_k, Σ_k) for 2-d points y."""
    log_terms = np.empty((points.shape[0], len(weights)))
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    for k, (mean, covariance) in enumerate(zip(means, covariances)):
        lower = np.linalg.cholesky(covariance)
        solved = np.linalg.solve(lower, (points - mean).T)
        log_det = 2 * np.log(np.diag(lower)).sum()
        log_terms[:, k] = (log_weights[k] - 0.5 * (solved ** 2).sum(axis=0)
                           - 0.5 * log_det - np.log(2 * np.pi))
    return logsumexp(log_terms, axis=1)
