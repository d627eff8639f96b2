"""gmmfast.plot draws headless (Agg) figures with the expected artists."""

import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from gmmfast import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC  # noqa: E402
from gmmfast._covariance_models import model_label  # noqa: E402
from gmmfast.plot import (  # noqa: E402
    full_covariances,
    plot_clusters,
    plot_criterion,
    plot_density,
    plot_uncertainty,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def axes():
    return Figure().subplots()


@pytest.fixture(scope="module")
def search(X_small):
    return GaussianMixtureIC(n_components=[1, 2, 3, 4], covariance_type=COVARIANCE_TYPES,
                             random_state=0).fit(X_small)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plot_clusters_two_features(make_data, covariance_type):
    X = make_data(n_samples=300, n_components=3, n_features=2, seed=1)
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ax = plot_clusters(model, X, ax=axes())
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1 and scatters[0].get_offsets().shape == (300, 2)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 3 * 2
    # The 1-sd ellipse of each component is centred on its mean, the 2-sd one twice as big.
    np.testing.assert_allclose([tuple(e.center) for e in ellipses[::2]], model.means_)
    assert ellipses[1].width == pytest.approx(2 * ellipses[0].width)
    means = ax.lines[0]
    np.testing.assert_allclose(means.get_xdata(), model.means_[:, 0])
    assert ax.get_xlabel() == "x0" and ax.get_ylabel() == "x1"


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_plot_clusters_of_a_bayesian_mixture_draws_the_components_in_use(make_data,
                                                                         n_features):
    from gmmfast._bayesian_mixture import components_in_use

    X = make_data(n_samples=300, n_components=3, n_features=n_features, seed=1)
    model = BayesianGaussianMixture(n_components=8, random_state=0, max_iter=500).fit(X)
    in_use = np.flatnonzero(components_in_use(model))
    assert 2 <= len(in_use) < 8
    ax = plot_clusters(model, X, ax=axes())
    if n_features == 1:
        labels = [line.get_label() for line in ax.lines]
        assert labels == [f"component {k}" for k in in_use] + ["mixture"]
        return
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == len(in_use) * 2
    assert ax.get_title().startswith(f"{len(in_use)} of 8 components in use, full "
                                     "covariance")
    if n_features == 2:
        np.testing.assert_allclose([tuple(e.center) for e in ellipses[::2]],
                                   model.means_[in_use])
        np.testing.assert_allclose(ax.lines[0].get_xdata(), model.means_[in_use, 0])


def test_ellipse_axes_follow_the_covariance():
    X = np.random.RandomState(0).multivariate_normal([0, 0], [[4, 1.9], [1.9, 1]], 2000)
    model = GaussianMixture(1, random_state=0).fit(X)
    ellipse = [p for p in plot_clusters(model, X, ax=axes(), n_std=(1,)).patches][0]
    values, vectors = np.linalg.eigh(model.covariances_[0])
    assert ellipse.width == pytest.approx(2 * np.sqrt(values[1]))
    assert ellipse.height == pytest.approx(2 * np.sqrt(values[0]))
    assert np.tan(np.radians(ellipse.angle)) == pytest.approx(vectors[1, 1] / vectors[0, 1])


def test_more_than_two_features_project_on_principal_axes_or_a_pair(search, X_small):
    ax = plot_clusters(search, X_small, ax=axes())  # a search draws its chosen model
    assert "principal axis 1" in ax.get_xlabel()
    assert len(ax.patches) == 2 * search.n_components_
    ax = plot_clusters(search, X_small, ax=axes(), features=(2, 0),
                       feature_names=["a", "b", "c", "d"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("c", "a")
    np.testing.assert_allclose(ax.lines[0].get_xdata(), search.best_estimator_.means_[:, 2])
    with pytest.raises(ValueError, match="two distinct indices"):
        plot_clusters(search, X_small, ax=axes(), features=(1, 1))


def test_plot_criterion(search):
    ax = plot_criterion(search, ax=axes(), zoom=False)
    assert len(ax.lines) == 4 + 1  # one line per covariance type, then the chosen star
    for line in ax.lines[:4]:
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    star = ax.lines[-1]
    assert star.get_marker() == "*"
    assert star.get_ydata()[0] == search.criterion_table_["bic"][search.best_index_]
    assert [t.get_text() for t in ax.get_legend().get_texts()][:4] == [
        "VVV (full)", "EEE (tied)", "VVI (diag)", "VII (spherical)"]
    assert ax.get_ylabel().startswith("BIC")
    # The table itself works too, and skipped candidates are left out.
    table = GaussianMixtureIC(n_components=[1, 2, 50], covariance_type="diag",
                              random_state=0).fit(search_data()).criterion_table_
    ax = plot_criterion(table, ax=axes())
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2])


def search_data():
    return np.random.RandomState(0).randn(30, 2)


@pytest.mark.parametrize("n_features", [2, 4])
def test_plot_density(make_data, n_features):
    X = make_data(n_samples=300, n_components=2, n_features=n_features, seed=2)
    model = GaussianMixture(2, random_state=0).fit(X)
    ax = plot_density(model, X, ax=axes(), resolution=60)
    from matplotlib.contour import ContourSet

    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 1 and len(contours[0].levels) > 3
    assert isinstance(ax.collections[0], PathCollection)  # the samples, under the contours
    assert ax.get_title() == "log-density"


def test_plot_density_is_the_model_density_in_two_dimensions(make_data):
    from gmmfast.plot import _log_density_2d, _Plane

    X = make_data(n_samples=200, n_components=2, n_features=2, seed=3)
    for covariance_type in COVARIANCE_TYPES:
        model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
        plane = _Plane(X, None, None)
        np.testing.assert_allclose(_log_density_2d(X, *plane.mixture(model)),
                                   model.score_samples(X), rtol=1e-10)
        assert full_covariances(model).shape == (2, 2, 2)


def test_one_feature():
    X = np.r_[np.random.RandomState(0).randn(100), np.random.RandomState(1).randn(100) + 6]
    model = GaussianMixture(2, random_state=0).fit(X[:, None])
    ax = plot_clusters(model, X[:, None], ax=axes())
    assert len(ax.lines) == 3  # two components and the mixture
    ax = plot_density(model, X[:, None], ax=axes())
    assert len(ax.lines) == 1


def test_default_axes_come_from_pyplot(X_small, search):
    import matplotlib.pyplot as plt

    ax = plot_criterion(search)
    assert ax.figure is plt.gcf()
    plt.close("all")


def test_a_clear_error_without_matplotlib():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None
        import numpy as np
        import gmmfast.plot  # importing the module does not need matplotlib
        from gmmfast import GaussianMixture
        X = np.random.RandomState(0).randn(50, 2)
        try:
            gmmfast.plot.plot_clusters(GaussianMixture(1).fit(X), X)
        except ImportError as exc:
            print(exc)
        """
    )
    with tempfile.TemporaryDirectory() as empty_dir:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120, cwd=empty_dir)
    assert result.returncode == 0, result.stderr
    assert "pip install 'gmmfast[plot]'" in result.stdout


def legend_texts(legend):
    return [text.get_text() for text in legend.get_texts()]


def test_plot_clusters_has_a_legend_of_the_components_drawn(make_data):
    X = make_data(n_samples=300, n_components=3, n_features=2, seed=1)
    model = GaussianMixture(3, random_state=0).fit(X)
    ax = plot_clusters(model, X, ax=axes())
    assert legend_texts(ax.get_legend()) == [
        f"{k}  (weight {w:.2f})" for k, w in enumerate(model.weights_)] + ["means"]
    colors = [handle.get_color() for handle in ax.get_legend().legend_handles[:3]]
    ellipse_colors = [p.get_edgecolor() for p in ax.patches[::2]]
    np.testing.assert_allclose(matplotlib.colors.to_rgba_array(colors), ellipse_colors)


def test_the_legend_of_a_bayesian_mixture_lists_the_components_in_use(make_data):
    from gmmfast._bayesian_mixture import components_in_use

    X = make_data(n_samples=300, n_components=3, n_features=2, seed=1)
    model = BayesianGaussianMixture(n_components=8, random_state=0, max_iter=500).fit(X)
    in_use = np.flatnonzero(components_in_use(model))
    texts = legend_texts(plot_clusters(model, X, ax=axes()).get_legend())
    assert [int(t.split()[0]) for t in texts[:-1]] == in_use.tolist()


def test_pairs_draws_every_pair_and_each_feature_on_the_diagonal(make_data):
    X = make_data(n_samples=300, n_components=3, n_features=4, seed=1)
    model = GaussianMixture(3, random_state=0).fit(X)
    names = ["a", "b", "c", "d"]
    grid = plot_clusters(model, X, ax=Figure(), features="pairs", feature_names=names)
    assert grid.shape == (4, 4)
    for i in range(4):
        assert len(grid[i, i].lines) == 3  # the components' densities on feature i
        for j in range(4):
            if i == j:
                continue
            ellipses = [p for p in grid[i, j].patches if isinstance(p, Ellipse)]
            np.testing.assert_allclose([tuple(e.center) for e in ellipses],
                                       model.means_[:, [j, i]])
            offsets = grid[i, j].collections[0].get_offsets()
            np.testing.assert_allclose(offsets, X[:, [j, i]])
    assert [grid[3, j].get_xlabel() for j in range(4)] == names
    assert [grid[i, 0].get_ylabel() for i in range(4)] == names
    legend = grid[0, 0].figure.legends[0]
    assert len(legend_texts(legend)) == 3 + 1


def test_pairs_needs_a_figure_and_features_a_known_word(make_data):
    X = make_data(n_samples=100, n_components=2, n_features=3, seed=1)
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="pass a matplotlib Figure or SubFigure"):
        plot_clusters(model, X, ax=axes(), features="pairs")
    with pytest.raises(ValueError, match="'pairs'"):
        plot_clusters(model, X, ax=axes(), features="pair")


def test_the_criterion_panel_is_zoomed_on_the_competitive_candidates(search):
    from gmmfast.plot import competitive_range

    table = search.criterion_table_
    scores = np.sort(table.scores[table["status"] == "ok"])
    ax = plot_criterion(search, ax=axes())
    low, high = ax.get_ylim()
    assert (low, high) == competitive_range(scores)
    assert low < scores[0] < scores[4] < high < scores[-1]
    assert "zoomed on the best candidates" in ax.get_title()
    # A covariance type with no candidate in view says where it is.
    above = [t for t in legend_texts(ax.get_legend()) if "(above: best" in t]
    for text in above:
        name = text.split(" (above")[0]
        rows = np.array([model_label(t) == name for t in table["covariance_type"]])
        assert table.scores[rows].min() > high
    full = plot_criterion(search, ax=axes(), zoom=False)
    assert full.get_ylim()[1] > scores[-1] and "zoomed" not in full.get_title()


def test_competitive_range():
    from gmmfast.plot import MIN_ZOOM_WINDOW, competitive_range

    # The best third reaches 5 above the best: the window is widened to the minimum.
    scores = [100, 101, 102, 105, 150, 300, 400, 500, 900]
    low, high = competitive_range(scores)
    assert low < 100 and high == pytest.approx(100 + MIN_ZOOM_WINDOW * 1.08)
    # Every score within the window: up to the worst.
    low, high = competitive_range([1.0, 2.0, 3.0])
    assert high > 3.0 and high < 1 + MIN_ZOOM_WINDOW
    scores = np.arange(60.0) * 20
    assert competitive_range(scores)[1] == pytest.approx(20 * 20 + 0.08 * 400)


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_plot_uncertainty_draws_one_minus_the_largest_responsibility(make_data,
                                                                    n_features):
    X = make_data(n_samples=300, n_components=3, n_features=n_features, seed=4)
    model = GaussianMixture(3, random_state=0).fit(X)
    figure = Figure()
    ax = plot_uncertainty(model, X, ax=figure.subplots())
    uncertainty = 1 - model.predict_proba(X).max(axis=1)
    drawn = ax.collections[0].get_array()
    np.testing.assert_allclose(drawn, np.sort(uncertainty))  # the most uncertain on top
    assert len(figure.axes) == 2  # and its colour bar
    expected = int((uncertainty > 0.1).sum())
    assert ax.get_title() == f"classification uncertainty ({expected} of 300 samples " \
                             "above 0.1)"
    sizes = ax.collections[0].get_sizes()
    assert np.all(np.diff(sizes) >= 0) and sizes[0] < sizes[-1] or expected == 0
    if n_features == 1:
        np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1],
                                   np.sort(uncertainty))
    else:
        assert len(ax.patches) == 3


@pytest.mark.parametrize("n_features", [2, 4, 7])
def test_the_cli_figure_has_a_scatterplot_matrix_up_to_six_columns(make_data, tmp_path,
                                                                  n_features):
    from gmmfast._cli import write_figure

    X = make_data(n_samples=200, n_components=2, n_features=n_features, seed=1)
    result = GaussianMixtureIC(n_components=[1, 2], covariance_type="full",
                               random_state=0).fit(X)
    names = [f"c{i}" for i in range(n_features)]
    figure = write_figure(tmp_path / "f.png", result, result.best_estimator_, X, names,
                          search=True)
    assert (tmp_path / "f.png").stat().st_size > 0
    titles = [ax.get_title() for ax in figure.axes]
    assert sum(t.startswith("classification uncertainty") for t in titles) == 1
    assert sum(t.startswith("BIC") for t in titles) == 1
    pairs = n_features ** 2 if n_features <= 6 and n_features > 2 else 0
    # the panels, the uncertainty's colour bar, and the matrix or the one cluster panel
    assert len(figure.axes) == 3 + (pairs or 1)
    if n_features == 7:
        assert figure.axes[0].get_xlabel().startswith("principal axis 1")


def test_principal_axes_are_those_of_the_standardised_columns(make_data):
    from gmmfast.plot import _Plane

    rng = np.random.RandomState(0)
    # Clusters in the first two columns; the third is noise in much larger units, which
    # would be the whole first principal axis of the raw data.
    X = np.column_stack([make_data(n_samples=400, n_components=2, n_features=2, seed=5),
                         rng.randn(400) * 1000])
    plane = _Plane(X, None, None)
    shares = [float(label.split("(")[1].split("%")[0]) for label in plane.labels]
    assert all(label.startswith(f"principal axis {i + 1} of the standardised columns")
               for i, label in enumerate(plane.labels))
    assert shares[0] < 90 and shares[1] > 10
    Y = plane.points(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-9)
    # The standardised data's two largest variances, which sum to at most 3 columns' 3.
    assert 1 < Y.var(axis=0).sum() < 3
    # The mixture drawn is still the exact projection of the model.
    model = GaussianMixture(2, random_state=0).fit(X)
    _, means, covariances = plane.mixture(model)
    np.testing.assert_allclose(means, plane.points(model.means_))
    np.testing.assert_allclose(covariances[0],
                               plane.matrix @ model.covariances_[0] @ plane.matrix.T)


def fourteen_model_table():
    from gmmfast._covariance_models import COVARIANCE_MODELS
    from gmmfast._selection import CriterionTable

    k, names = np.meshgrid([1, 2, 3], COVARIANCE_MODELS)
    scores = 100.0 + np.arange(k.size, dtype=np.float64)[::-1]
    return CriterionTable({"n_components": k.ravel(), "covariance_type": names.ravel(),
                           "bic": scores, "converged": np.ones(k.size, dtype=bool),
                           "status": np.array(["ok"] * k.size)}, "bic", k.size - 1)


def test_the_fourteen_models_have_distinct_lines_and_a_legend_beside_the_panel():
    ax = plot_criterion(fourteen_model_table(), ax=axes(), zoom=False)
    lines = ax.get_lines()[:14]
    styles = {(tuple(line.get_color()), line.get_marker()) for line in lines}
    assert len(styles) == 14
    legend = ax.get_legend()
    assert len(legend_texts(legend)) == 15  # and the chosen star
    ax.figure.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1


def test_a_few_types_keep_their_legend_inside_the_panel(search):
    ax = plot_criterion(search, ax=axes())
    ax.figure.canvas.draw()
    assert ax.get_window_extent().contains(*ax.get_legend().get_window_extent().min)
