"""Model-based hierarchical agglomeration under the unconstrained (VVV) Gaussian criterion
(Banfield & Raftery, 1993; Fraley, 1998, "Algorithms for model-based Gaussian
hierarchical clustering").

Each step merges the two clusters whose union least increases the classification
criterion ``Σ_k n_k log det Σ_k`` (minus twice the classification log-likelihood of a
Gaussian per cluster with its own covariance, up to constants). A cluster of fewer rows
than dimensions has a singular scatter and no such criterion, so, as Fraley does with his
``alpha`` and ``beta``, every cluster's covariance is regularised by a spherical term
worth one row of spread::

    Σ_k = (W_k + s_k I) / n_k,   s_k = alpha · ω + beta · tr(W_k) / (n_k p),

with ``W_k`` the cluster's scatter about its mean, ``p`` the dimension and ``ω`` the data's
mean variance per dimension. A singleton is then a sphere of the data's spread, and the
term fades as ``1/n_k`` so large clusters meet the plain VVV criterion. Merges do not change
when the data are scaled by one common factor.

The changes of the criterion are kept in an (n, n) table, each row with its minimum: a
merge recomputes one row (the new cluster against every live one, a batch of determinants)
and the minima of the rows that pointed at the merged pair, so n rows cost O(n²) memory and
O(n²) determinants, as Fraley's algorithm does.
"""

import numpy as np

ALPHA = 1.0
BETA = 1.0


def vvv_linkage(points, alpha=ALPHA, beta=BETA):
    """The agglomeration of the rows of ``points`` (n, p) as a SciPy linkage matrix
    (n − 1, 4): the merged clusters' ids, the merge's rank as its height (the criterion's
    changes are not monotone; ranks make ``fcluster(…, criterion="maxclust")`` replay the
    first merges), and the merged cluster's size. Ties go to the lowest row index."""
    if not (alpha > 0 and beta >= 0):
        raise ValueError(f"alpha must be positive and beta non-negative; got alpha={alpha}, "
                         f"beta={beta}.")
    points = np.asarray(points, dtype=np.float64)
    n, p = points.shape
    if n < 2:
        raise ValueError(f"an agglomeration needs at least 2 rows; got {n}.")
    spread = alpha * float(np.mean(np.var(points, axis=0)))
    if not np.isfinite(spread) or spread <= 0:
        raise ValueError("an agglomeration needs rows that are finite and not all equal.")
    clusters = _Clusters(points, spread, beta)
    changes = clusters.pair_changes()
    nearest = np.argmin(changes, axis=1)
    smallest = changes[np.arange(n), nearest]
    ids = np.arange(n)
    linkage = np.zeros((n - 1, 4))
    for step in range(n - 1):
        kept = int(np.argmin(smallest))
        gone = int(nearest[kept])
        kept, gone = min(kept, gone), max(kept, gone)
        linkage[step] = (*sorted((ids[kept], ids[gone])), step + 1,
                         clusters.size[kept] + clusters.size[gone])
        ids[kept] = n + step
        clusters.merge(kept, gone)
        changes[gone, :] = changes[:, gone] = np.inf
        smallest[gone] = np.inf
        live = clusters.live_except(kept)
        row = np.full(n, np.inf)
        row[live] = clusters.merge_changes(kept, live)
        changes[kept, :] = changes[:, kept] = row
        _update_nearest(changes, nearest, smallest, kept, gone)
    return linkage


def _update_nearest(changes, nearest, smallest, kept, gone):
    """Each row's smallest change after row and column ``kept`` were recomputed and
    ``gone`` removed."""
    stale = (nearest == kept) | (nearest == gone)
    stale[kept] = True
    rows = np.flatnonzero(stale)
    nearest[rows] = np.argmin(changes[rows], axis=1)
    smallest[rows] = changes[rows, nearest[rows]]
    closer = changes[:, kept] < smallest
    closer[kept] = False
    nearest[closer] = kept
    smallest[closer] = changes[closer, kept]
    smallest[gone] = np.inf


class _Clusters:
    """The live clusters' sizes, means, scatters and criterion terms, by slot (a cluster
    lives in the lowest slot of its rows)."""

    def __init__(self, points, spread, beta):
        n, p = points.shape
        self.spread, self.beta, self.dim = spread, beta, p
        self.points = points
        self.size = np.ones(n)
        self.mean = points.copy()
        self.scatter = np.zeros((n, p, p))
        self.live = np.ones(n, dtype=bool)
        self.term = np.full(n, p * np.log(spread))  # a singleton's n log det Σ

    def criterion_terms(self, size, scatter):
        """``n log det Σ`` of clusters of ``size`` (m,) and ``scatter`` (m, p, p)."""
        trace = np.trace(scatter, axis1=1, axis2=2)
        shrink = self.spread + self.beta * trace / (size * self.dim)
        covariance = (scatter + shrink[:, None, None] * np.eye(self.dim)) / size[:, None, None]
        return size * np.linalg.slogdet(covariance)[1]

    def pair_changes(self):
        """The (n, n) changes of merging two singletons (∞ on the diagonal): a pair's
        scatter has the one eigenvalue ``d²/2`` along its difference ``d``."""
        from scipy.spatial.distance import pdist, squareform

        squared = squareform(pdist(self.points, "sqeuclidean"))
        p = self.dim
        shrink = self.spread + self.beta * squared / (4 * p)
        pair = 2 * (np.log((squared / 2 + shrink) / 2) + (p - 1) * np.log(shrink / 2))
        changes = pair - 2 * p * np.log(self.spread)
        np.fill_diagonal(changes, np.inf)
        return changes

    def live_except(self, slot):
        live = self.live.copy()
        live[slot] = False
        return np.flatnonzero(live)

    def union(self, slot, others):
        """Size, mean and scatter of the union of cluster ``slot`` with each of ``others``."""
        size_a, size_b = self.size[slot], self.size[others]
        size = size_a + size_b
        gap = self.mean[others] - self.mean[slot]
        mean = self.mean[slot] + gap * (size_b / size)[:, None]
        between = (size_a * size_b / size)[:, None, None] * gap[:, :, None] * gap[:, None, :]
        return size, mean, self.scatter[slot] + self.scatter[others] + between

    def merge_changes(self, slot, others):
        """The changes of merging cluster ``slot`` with each of ``others``."""
        changes = np.empty(len(others))
        single = self.size[others] == 1
        changes[single] = self._singleton_changes(slot, others[single])
        grown = others[~single]
        size, _, scatter = self.union(slot, grown)
        changes[~single] = self.criterion_terms(size, scatter) - self.term[grown]
        return changes - self.term[slot]

    def _singleton_changes(self, slot, rows):
        """The changes, less ``term[slot]``, of adding each single row to cluster ``slot``:
        its scatter grows by the rank-one ``c d dᵀ`` (``d`` the row's gap to the mean), so
        in the eigenbasis of the cluster's scatter the determinant is the product of the
        shifted eigenvalues times ``1 + c Σ y²/(λ + s)`` (the matrix determinant lemma),
        without forming a matrix per row."""
        size = self.size[slot] + 1
        weight = self.size[slot] / size
        eigenvalues, basis = np.linalg.eigh(self.scatter[slot])
        gap = self.mean[rows] - self.mean[slot]
        trace = np.trace(self.scatter[slot]) + weight * np.einsum("ij,ij->i", gap, gap)
        shrink = self.spread + self.beta * trace / (size * self.dim)
        shifted = eigenvalues[None, :] + shrink[:, None]
        projected = gap @ basis
        log_det = (np.sum(np.log(shifted), axis=1)
                   + np.log1p(weight * np.sum(projected**2 / shifted, axis=1)))
        return size * (log_det - self.dim * np.log(size)) - self.term[rows]

    def merge(self, kept, gone):
        size, mean, scatter = self.union(kept, np.array([gone]))
        self.size[kept], self.mean[kept], self.scatter[kept] = size[0], mean[0], scatter[0]
        self.term[kept] = self.criterion_terms(size, scatter)[0]
        self.live[gone] = False
