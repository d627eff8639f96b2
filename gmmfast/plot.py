"""Plots of fitted Gaussian mixtures (matplotlib, the optional extra ``gmmfast[plot]``).

- :func:`plot_clusters`: the samples coloured by component, one covariance ellipse per
  component at 1 and 2 standard deviations, the means marked, a legend of the components
  (for a Bayesian mixture, the components in use); ``features="pairs"`` draws the
  scatterplot matrix of every pair of features;
- :func:`plot_uncertainty`: each sample's classification uncertainty, 1 − max_k p(k | x);
- :func:`plot_criterion`: the criterion of a search against ``n_components``, one line per
  covariance type, the chosen model marked, zoomed on the competitive candidates;
- :func:`plot_density`: contours of the log-density.

Data with more than two features are shown in a plane: a chosen pair of features
(``features=(i, j)``) or, by default, the first two principal axes of X's standardised
columns (so that no column dominates by its units). The mixture drawn
there is the exact marginal of the model in that plane (a linear projection of a Gaussian
mixture is a Gaussian mixture). One feature is shown as a histogram with the component
densities. matplotlib is imported only when a function is called.
"""

import numpy as np
from scipy.special import logsumexp

from gmmfast._covariance_models import model_label, sklearn_layout

__all__ = ["plot_clusters", "plot_criterion", "plot_density", "plot_uncertainty"]

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


# Markers that tell lines apart when the colour map's colours are close or repeat.
LINE_MARKERS = "osD^vP<X>p"


def _line_styles(n):
    """(colour, marker) of n lines, every pair distinct: ten colours take one marker, more
    lines add a marker per line so that neighbours in a 20-colour map still differ."""
    colors = _colors(n)
    if n <= 10:
        return [(color, "o") for color in colors]
    return [(color, LINE_MARKERS[i % len(LINE_MARKERS)]) for i, color in enumerate(colors)]


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
        # First two principal axes of the standardised columns: the plane in which the
        # data vary most once no column's units dominate (on raw variances the column with
        # the largest numbers would be the whole first axis: proline in the wine data).
        X = np.asarray(X, dtype=np.float64)
        self.origin = X.mean(axis=0)
        sd = X.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        values, vectors = np.linalg.eigh(np.cov(X / sd, rowvar=False))
        order = np.argsort(values)[::-1][:2]
        axes = vectors[:, order].T
        # A deterministic sign: the largest loading of each axis is positive.
        signs = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
        self.matrix = axes * signs[:, None] / sd
        share = values[order] / values.sum()
        # Two lines: in one, the label outgrows a short panel's height.
        self.labels = tuple(f"principal axis {i + 1} of the standardised columns\n"
                            f"({100 * s:.0f}% of variance)" for i, s in enumerate(share))

    def points(self, X):
        return (np.asarray(X, dtype=np.float64) - self.origin) @ self.matrix.T

    def mixture(self, model):
        """(weights, means (K, 2), covariances (K, 2, 2)) of the model's marginal here."""
        means = (np.asarray(model.means_, dtype=np.float64) - self.origin) @ self.matrix.T
        covariances = self.matrix @ full_covariances(model) @ self.matrix.T
        return np.asarray(model.weights_, dtype=np.float64), means, covariances


def _model_and_data(model, X, feature_names):
    """The fitted mixture to draw, X checked against it, and the feature names (those
    given, else the model's, else None)."""
    _require_matplotlib()
    model = _mixture(model)
    X = _check_X(model, X)
    names = feature_names if feature_names is not None else getattr(
        model, "feature_names_in_", None)
    return model, X, names


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
    """Samples coloured by their most likely component, covariance ellipses, means, and a
    legend of the components with their weights.

    Parameters
    ----------
    model : GaussianMixture, BayesianGaussianMixture or GaussianMixtureIC
        A fitted mixture (a search draws its chosen model; a Bayesian mixture the
        components in use, see ``components_in_use``).
    X : array-like (n_samples, n_features)
        The samples to draw (usually the training data).
    ax : matplotlib Axes (a Figure or SubFigure with ``features="pairs"``), optional
        Where to draw; a new pyplot figure by default.
    features : pair of int or "pairs", optional
        The two features to show when X has more than two; default: the first two
        principal axes of X's standardised columns. ``"pairs"``: a scatterplot matrix,
        every pair of features below and above the diagonal (row i, column j: feature j
        across, feature i up) and each feature's component densities on it.
    n_std : sequence of float, default=(1, 2)
        One ellipse per value: the contour at that many standard deviations (solid for the
        first, dashed for the others).
    feature_names : sequence of str, optional
        Axis labels (default ``model.feature_names_in_`` if fitted on named columns).

    Returns
    -------
    ax : the matplotlib Axes. It holds one scatter collection (the samples), one line
    (the means, "+" markers) and ``K * len(n_std)`` ellipse patches (K the components
    drawn). With ``features="pairs"``: the (n_features, n_features) array of Axes.
    """
    model, X, names = _model_and_data(model, X, feature_names)
    names = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
    labels = model.predict(X)
    colors = _colors(model.n_components)
    shown = _components_shown(model)
    if isinstance(features, str):
        if features != "pairs":
            raise ValueError(f"features must be a pair of feature indices or 'pairs', got "
                             f"{features!r}")
        return _plot_pairs(model, X, ax, labels, colors, shown, names, n_std, point_size)
    ax = _axes(ax)
    if X.shape[1] == 1:
        return _plot_1d(model, X, ax, labels, colors, names, shown)
    plane = _Plane(X, features, names)
    _draw_clusters(ax, model, plane.points(X), plane.mixture(model), labels, colors, shown,
                   n_std, point_size)
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])
    ax.set_title(f"{_count_text(model, shown)}, {model.covariance_type} covariance "
                 f"(ellipses at {', '.join(f'{n:g}' for n in n_std)} sd)")
    ax.legend(handles=_component_handles(model, shown, colors), title="component",
              fontsize="small", title_fontsize="small", loc=_legend_place(X))
    return ax


def _draw_clusters(ax, model, Y, mixture, labels, colors, shown, n_std, point_size):
    """The points Y (already in the plane), the ellipses and the means of ``mixture``
    (weights, means, covariances in the plane)."""
    ax.scatter(Y[:, 0], Y[:, 1], c=np.asarray(colors)[labels], s=point_size, alpha=0.6,
               linewidths=0)
    _, means, covariances = mixture
    for k in shown:
        for rank, n in enumerate(n_std):
            ax.add_patch(_ellipse(means[k], covariances[k], n, fill=False,
                                  edgecolor=colors[k], linewidth=2.0 if rank == 0 else 1.2,
                                  linestyle="-" if rank == 0 else "--"))
    ax.plot(means[shown, 0], means[shown, 1], "k+", markersize=14, markeredgewidth=2.5,
            label="component means")
    ax.autoscale_view()


# Above this many points, matplotlib's search for the emptiest corner ("best") is slow.
BEST_LEGEND_MAX_POINTS = 20_000


def _legend_place(X):
    return "best" if len(X) <= BEST_LEGEND_MAX_POINTS else "upper right"


def _component_handles(model, shown, colors):
    """Legend entries: one per component drawn (its colour and weight), then the means."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="o", color=colors[k],
                      label=f"{k}  (weight {model.weights_[k]:.2f})") for k in shown]
    handles.append(Line2D([], [], linestyle="none", marker="+", color="k", markersize=10,
                          markeredgewidth=2, label="means"))
    return handles


def _figure(figure):
    """``figure`` (a Figure or SubFigure), or a new pyplot figure; an Axes is refused."""
    if figure is None:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(MATPLOTLIB_MISSING) from None
        return plt.figure(figsize=(8, 8), layout="constrained")
    if not hasattr(figure, "subplots"):
        raise ValueError("features='pairs' draws a grid of axes: pass a matplotlib Figure "
                         f"or SubFigure as ax (or None), not {type(figure).__name__}")
    return figure


def _plot_pairs(model, X, figure, labels, colors, shown, names, n_std, point_size):
    """The scatterplot matrix of ``plot_clusters(..., features="pairs")``."""
    figure = _figure(figure)
    n_features = X.shape[1]
    grid = figure.subplots(n_features, n_features, squeeze=False, sharex="col")
    small = max(2, point_size // 3)
    for i in range(n_features):
        for j in range(n_features):
            ax = grid[i, j]
            if i == j:
                _draw_marginal(ax, model, X[:, j], j, colors, shown)
                ax.set_yticks([])
            else:
                plane = _Plane(X, (j, i), names)
                _draw_clusters(ax, model, plane.points(X), plane.mixture(model), labels,
                               colors, shown, n_std[:1], small)
                ax.lines[0].set(markersize=8, markeredgewidth=1.5)
                if j > 0:
                    ax.tick_params(labelleft=False)
                if i == 0 and j == n_features - 1:
                    # The first row's scale, which its diagonal panel (a density) lacks.
                    ax.tick_params(labelright=True)
            if i < n_features - 1:
                ax.tick_params(labelbottom=False)
            ax.tick_params(labelsize="x-small")
        grid[n_features - 1, i].set_xlabel(names[i], fontsize="small")
        grid[i, 0].set_ylabel(names[i], fontsize="small")
    figure.suptitle(f"{_count_text(model, shown)}, {model.covariance_type} covariance "
                    f"(ellipses at {n_std[0]:g} sd; diagonal: each feature's components)")
    handles = _component_handles(model, shown, colors)
    figure.legend(handles=handles, title="component", fontsize="small",
                  title_fontsize="small", loc="outside lower center",
                  ncols=min(len(handles), 6))
    return grid


def _draw_marginal(ax, model, x, feature, colors, shown):
    """A histogram of one feature and the weighted density of each component on it;
    returns the grid and the densities (K, grid)."""
    ax.hist(x, bins="auto", density=True, color="0.8", label="data")
    span = np.ptp(x) or 1.0
    grid = np.linspace(x.min() - 0.1 * span, x.max() + 0.1 * span, 400)
    variances = full_covariances(model)[:, feature, feature]
    means = np.asarray(model.means_, dtype=np.float64)[:, feature:feature + 1]
    densities = (model.weights_[:, None] / np.sqrt(2 * np.pi * variances[:, None])
                 * np.exp(-0.5 * (grid - means) ** 2 / variances[:, None]))
    for k in shown:
        ax.plot(grid, densities[k], color=colors[k], label=f"component {k}")
    return grid, densities


def _count_text(model, shown):
    """"3 components", or "3 of 10 components in use" when some are not drawn."""
    total = model.n_components
    if len(shown) < total:
        return f"{len(shown)} of {total} components in use"
    return f"{total} component{'s' * (total != 1)}"


def _plot_1d(model, X, ax, labels, colors, names, shown):
    grid, densities = _draw_marginal(ax, model, X[:, 0], 0, colors, shown)
    ax.plot(grid, densities.sum(axis=0), "k-", linewidth=2, label="mixture")
    ax.set_xlabel(names[0])
    ax.set_ylabel("density")
    ax.legend()
    return ax


def plot_criterion(result, ax=None, *, zoom=True):
    """The search's criterion against ``n_components``, one line per covariance type.

    ``result`` is a fitted :class:`gmmfast.GaussianMixtureIC` (or its
    ``criterion_table_``). Skipped and failed candidates are left out; the chosen model is
    marked with a star. With ``zoom`` (the default) the y-axis shows the competitive
    candidates (see :func:`competitive_range`) rather than stretching to the worst one; a
    covariance type with no candidate in view says so in the legend. Returns the Axes: one
    line per covariance type plus one for the star.
    """
    _require_matplotlib()
    table = getattr(result, "criterion_table_", result)
    ax = _axes(ax)
    ok = table["status"] == "ok"
    low, high = competitive_range(table.scores[ok]) if zoom and ok.any() else (-np.inf,
                                                                                np.inf)
    types = list(dict.fromkeys(table["covariance_type"].tolist()))
    for covariance_type, (color, marker) in zip(types, _line_styles(len(types))):
        rows = ok & (table["covariance_type"] == covariance_type)
        label = model_label(covariance_type)
        if rows.any() and table.scores[rows].min() > high:
            label += f" (above: best {table.scores[rows].min():.0f})"
        ax.plot(table["n_components"][rows], table.scores[rows], color=color, marker=marker,
                label=label)
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
    n_above = int((table.scores[ok] > high).sum())
    if n_above:
        ax.set_ylim(low, high)
        ax.set_title(f"{table.criterion.upper()}, zoomed on the best candidates "
                     f"({n_above} of {int(ok.sum())} above)")
    else:
        ax.set_title(f"{table.criterion.upper()} of every candidate")
    # Beyond a handful of lines an inner legend hides the very curves it names.
    outside = len(types) > MAX_INNER_LEGEND_LINES
    ax.legend(title="covariance_type", fontsize="small", title_fontsize="small",
              **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}))
    return ax


MAX_INNER_LEGEND_LINES = 6


# The zoomed criterion panel shows at least this difference from the best (ΔBIC > 10 is
# "very strong" evidence on Kass and Raftery's scale)...
MIN_ZOOM_WINDOW = 10.0
# ... and at least the best third of the candidates.
ZOOM_SHARE = 1 / 3


def competitive_range(scores):
    """(low, high): the y-range of a criterion panel that shows the competitive candidates.

    From just below the best score up to the score of the best third's last candidate,
    but at least ``MIN_ZOOM_WINDOW`` above the best, and never beyond the worst.
    """
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    best = ordered[0]
    quarter = ordered[min(len(ordered) - 1, max(3, int(ZOOM_SHARE * len(ordered))))]
    window = max(quarter - best, MIN_ZOOM_WINDOW)
    top = min(best + window, ordered[-1])
    margin = 0.08 * max(top - best, MIN_ZOOM_WINDOW)
    return best - margin, top + margin


def _uncertainty_colormap():
    """Grey for a sure sample, through orange to dark red for the most uncertain: the
    uncertain few stand out on a white background, the sure many stay visible."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("uncertainty", ["0.72", "orange", "darkred"])


def plot_uncertainty(model, X, ax=None, *, features=None, feature_names=None,
                     point_size=12):
    """Each sample's classification uncertainty, ``1 − max_k p(k | x)``.

    0 for a sample surely in one component, up to ``1 − 1/K`` for one shared equally
    among K. The samples, in the plane of :func:`plot_clusters` (``features`` and
    ``feature_names`` as there), are coloured and sized by it, the most uncertain drawn
    last, over the components' 1-sd ellipses in grey; a colour bar gives the scale. With
    one feature: the uncertainty against the feature. Returns the Axes; its first
    collection is the samples' scatter, whose array is the uncertainty in the order drawn.
    """
    model, X, names = _model_and_data(model, X, feature_names)
    ax = _axes(ax)
    uncertainty = 1.0 - model.predict_proba(X).max(axis=1).astype(np.float64)
    order = np.argsort(uncertainty, kind="stable")
    top = max(1.0 - 1.0 / model.n_components, 1e-3)
    sizes = point_size * (0.5 + 3.5 * uncertainty[order] / top)
    if X.shape[1] == 1:
        Y = np.column_stack([X[:, 0], uncertainty])
        labels = (names[0] if names is not None else "x0", "uncertainty")
    else:
        plane = _Plane(X, features, names)
        Y = plane.points(X)
        labels = plane.labels
        _, means, covariances = plane.mixture(model)
        for k in _components_shown(model):
            ax.add_patch(_ellipse(means[k], covariances[k], 1, fill=False, edgecolor="0.45",
                                  linewidth=1.2))
    points = ax.scatter(Y[order, 0], Y[order, 1], c=uncertainty[order], s=sizes,
                        cmap=_uncertainty_colormap(), vmin=0.0, vmax=top, linewidths=0)
    ax.figure.colorbar(points, ax=ax, label="uncertainty: 1 − max p(k | x)")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    n_uncertain = int(np.count_nonzero(uncertainty > 0.1))
    ax.set_title(f"classification uncertainty ({n_uncertain} of {len(X)} samples "
                 "above 0.1)")
    ax.autoscale_view()
    return ax


def plot_density(model, X, ax=None, *, features=None, feature_names=None, levels=12,
                 resolution=200, show_points=True):
    """Contours of the log-density of the mixture over the range of X.

    With more than two features the density drawn is the model's exact marginal density in
    the plane shown (a pair of features, or the first two principal axes of X's
    standardised columns). Returns the Axes; its contour set is ``ax.collections`` (with
    the samples' scatter first when
    ``show_points``).
    """
    model, X, names = _model_and_data(model, X, feature_names)
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
