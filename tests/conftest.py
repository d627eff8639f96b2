"""Shared data for gmmfast's tests: small, well-separated Gaussian mixtures and inits."""

import numpy as np
import pytest

import gmmfast


def pytest_report_header(config):
    """Say which gmmfast is under test: CI must test the installed build, not the sources."""
    info = gmmfast._config.config()
    return (f"gmmfast {info['version']} from {gmmfast.__file__}; OpenMP "
            f"{'on' if info['openmp'] else 'off'}, {info['default_threads']} default threads")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def _mixture_data(n_samples=600, n_components=3, n_features=4, seed=0, spread=4.0,
                  return_labels=False):
    """Anisotropic, well-separated blobs of (nearly) equal size, float64, near the origin.

    With ``return_labels`` also the blob index of every row.
    """
    rng = np.random.RandomState(seed)
    centers = rng.randn(n_components, n_features) * spread
    sizes = np.full(n_components, n_samples // n_components)
    sizes[: n_samples - sizes.sum()] += 1
    blocks = []
    for center, size in zip(centers, sizes):
        mixing = 0.4 * rng.randn(n_features, n_features) + np.eye(n_features)
        blocks.append(center + rng.randn(size, n_features) @ mixing)
    X = np.vstack(blocks)
    labels = np.repeat(np.arange(n_components), sizes)
    order = rng.permutation(n_samples)
    return (X[order], labels[order]) if return_labels else X[order]


def _inits(X, n_components, covariance_type, seed=0):
    """weights_init / means_init / precisions_init for X; means are rows of X."""
    rng = np.random.RandomState(seed)
    n_samples, n_features = X.shape
    weights = rng.uniform(1.0, 2.0, n_components)
    weights /= weights.sum()
    means = X[rng.choice(n_samples, n_components, replace=False)].copy()
    scale = 1.0 / np.var(X, axis=0).mean()
    precisions = {
        "full": np.stack([np.eye(n_features) * scale] * n_components),
        "tied": np.eye(n_features) * scale,
        "diag": np.full((n_components, n_features), scale),
        "spherical": np.full(n_components, scale),
    }[covariance_type]
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


@pytest.fixture(scope="session")
def make_data():
    """Factory: make_data(n_samples=600, n_components=3, n_features=4, seed=0,
    return_labels=False)."""
    return _mixture_data


@pytest.fixture(scope="session")
def make_inits():
    """Factory: make_inits(X, n_components, covariance_type, seed=0) -> dict of inits."""
    return _inits


@pytest.fixture(scope="session")
def X_small():
    """600 × 4 float64 samples of a 3-component mixture."""
    X = _mixture_data()
    X.setflags(write=False)
    return X
