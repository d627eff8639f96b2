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
from gmmfast.plot import (  # noqa: E402
    full_covariances,
    plot_clusters,
    plot_criterion,
    plot_density,
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
    ax = plot_criterion(search, ax=axes())
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
