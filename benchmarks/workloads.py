"""The standard workloads of ../shared/WORKLOADS.md: data generator, common start, cache.

Imported by the parent process of the suite (``run.py``) only; the child processes that time
the libraries load the cached ``.npy``/``.npz`` files and never need this module.
"""

import time
from pathlib import Path

import numpy as np

SEED = 0
MAX_ITER = 20
START_SUBSAMPLE = 100_000

# id: (N, D, K, covariance_type, dtype, note).  a-f are WORKLOADS.md's; t and s are
# supplementary (the "every covariance type at D <= 16"): b's shape at N=200 000.
WORKLOADS = {
    "a": (100_000, 2, 4, "full", "float64", "the seed example's scale"),
    "b": (1_000_000, 8, 16, "full", "float64", "the headline workload"),
    "c": (200_000, 32, 8, "full", "float64", "larger D"),
    "d": (1_000_000, 8, 16, "diag", "float64", "diagonal covariances"),
    "e": (1_000_000, 8, 16, "full", "float32", "float32 input"),
    "f": (20_000, 64, 32, "full", "float64", "high D, many components"),
    "t": (200_000, 8, 16, "tied", "float64", "tied covariance"),
    "s": (200_000, 8, 16, "spherical", "float64", "spherical covariance"),
}
DEFAULT_WORKLOADS = "abcdefts"

# --quick: every workload at a small N (seconds in total, not a measurement).
QUICK_N = {"a": 5_000, "b": 20_000, "c": 5_000, "d": 20_000, "e": 20_000, "f": 6_000,
           "t": 10_000, "s": 10_000}


def make_blobs(n, d, k, seed=SEED, return_mixture=False):
    """K well-separated Gaussian blobs per WORKLOADS.md, rows shuffled (float64).

    Means uniform in [-15, 15]^D, re-drawn until every pair is at least 12 apart, the box
    growing 10 % after every 1000 failed draws; covariances ``A Aᵀ / D + 0.1 I`` with ``A``
    standard normal (K×D×D); weights Dirichlet(10·1_K); counts multinomial. With
    ``return_mixture``, also the mixture drawn from: ``(weights, means, covariances)``.
    """
    rng = np.random.default_rng(seed)
    half_width, failures = 15.0, 0
    while True:
        means = rng.uniform(-half_width, half_width, size=(k, d))
        dist = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=-1)
        if k == 1 or dist[np.triu_indices(k, 1)].min() >= 12.0:
            break
        failures += 1
        if failures % 1000 == 0:
            half_width *= 1.1
    A = rng.standard_normal((k, d, d))
    covariances = A @ A.transpose(0, 2, 1) / d + 0.1 * np.eye(d)
    weights = rng.dirichlet(np.full(k, 10.0))
    counts = rng.multinomial(n, weights)
    X = np.empty((n, d))
    start = 0
    for j in range(k):
        L = np.linalg.cholesky(covariances[j])
        X[start:start + counts[j]] = means[j] + rng.standard_normal((counts[j], d)) @ L.T
        start += counts[j]
    rng.shuffle(X)
    return (X, (weights, means, covariances)) if return_mixture else X


def make_start(X, k, seed=SEED):
    """Full-covariance start from one k-means: (weights, means, covariances, precisions).

    One ``sklearn.cluster.KMeans(k, n_init=1, random_state=seed)`` on a sorted random
    subsample of at most 100 000 rows; per-cluster covariance + 1e-6·I.
    """
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed + 1)
    sub = X[np.sort(rng.choice(len(X), size=min(START_SUBSAMPLE, len(X)), replace=False))]
    labels = KMeans(k, n_init=1, random_state=seed).fit(sub).labels_
    d = X.shape[1]
    weights = np.bincount(labels, minlength=k) / len(sub)
    means = np.stack([sub[labels == j].mean(axis=0) for j in range(k)])
    covariances = np.empty((k, d, d))
    for j in range(k):
        diff = sub[labels == j] - means[j]
        covariances[j] = diff.T @ diff / len(diff) + 1e-6 * np.eye(d)
    precisions = np.linalg.inv(covariances)
    precisions = (precisions + precisions.transpose(0, 2, 1)) / 2
    return weights, means, covariances, precisions


def start_for(covariance_type, weights, means, covariances):
    """The full start in ``covariance_type``'s form: (precisions_init, covariances)."""
    d = means.shape[1]
    if covariance_type == "full":
        cov = covariances
    elif covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in covariances])
    elif covariance_type == "spherical":
        cov = np.array([np.trace(c) / d for c in covariances])
    elif covariance_type == "tied":
        cov = np.einsum("k,kij->ij", weights, covariances)
    else:
        raise ValueError(covariance_type)
    if covariance_type in ("full", "tied"):
        prec = np.linalg.inv(cov)
        prec = (prec + np.swapaxes(prec, -1, -2)) / 2
    else:
        prec = 1.0 / cov
    return prec, cov


def prepare(wid, n, raw_dir, log=print):
    """Paths of the cached data (.npy, float64 or float32) and start (.npz) of a workload.

    Workloads with the same (N, D, K) share one generated float64 array (b, d and e are the
    same rows: e is b cast to float32, so their log-likelihoods compare) and one k-means.
    """
    _, d, k, cov_type, dtype, _ = WORKLOADS[wid]
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    stem = f"blobs_n{n}_d{d}_k{k}_seed{SEED}"
    data64 = raw_dir / f"{stem}.npy"
    kmeans = raw_dir / f"{stem}_kmeans.npz"
    if not data64.exists():
        t0 = time.perf_counter()
        np.save(data64, make_blobs(n, d, k, SEED))
        log(f"  generated {data64.name} in {time.perf_counter() - t0:.1f} s")
    if not kmeans.exists():
        t0 = time.perf_counter()
        w, m, c, p = make_start(np.load(data64), k, SEED)
        np.savez(kmeans, weights=w, means=m, covariances=c, precisions=p)
        log(f"  k-means start {kmeans.name} in {time.perf_counter() - t0:.1f} s")
    data = data64
    if dtype == "float32":
        data = raw_dir / f"{stem}_float32.npy"
        if not data.exists():
            np.save(data, np.load(data64).astype(np.float32))
    start = raw_dir / f"{stem}_start_{cov_type}.npz"
    if not start.exists():
        km = np.load(kmeans)
        prec, cov = start_for(cov_type, km["weights"], km["means"], km["covariances"])
        np.savez(start, weights=km["weights"], means=km["means"], precisions=prec,
                 covariances=cov)
    return data, start


def flops_per_iteration(n, d, k, covariance_type):
    """The issue's estimate: N·K·D² (whitened rows) + N·K·D² (scatter) for full; O(NKD) else."""
    if covariance_type == "full":
        return 2.0 * n * k * d * d
    if covariance_type == "tied":  # one D×D whitening per component, no per-component scatter
        return 1.0 * n * k * d * d + 1.0 * n * d * d
    return 4.0 * n * k * d  # diag/spherical: a few flops per (row, component, feature)
