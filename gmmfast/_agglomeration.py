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
    clusters = _Clusters.singletons(points, spread, beta)
    return _agglomerate(clusters, clusters.pair_changes(), np.arange(n), 0, n)


def spherical_top(linkage, points, n_clusters, alpha=ALPHA, beta=BETA):
    """``linkage``, a :func:`vvv_linkage` of ``points``, with its merges above
    ``n_clusters`` clusters replaced by those of the spherical (VII) criterion
    ``Σ_k n_k p log(tr Σ_k / p)``, regularised as the VVV one: the same partitions into
    ``n_clusters`` or more clusters, other ones into fewer.

    Below the true number of clusters every merge joins whole clusters, and which ones
    the VVV criterion joins (the pair whose union looks most like one Gaussian) need not
    be the merging that the spherical and diagonal models fit best: there the spherical
    criterion's merges (the pair whose union adds least spread, each cluster with its own
    volume) can start those models at optima that the VVV cuts miss."""
    points = np.asarray(points, dtype=np.float64)
    n, p = points.shape
    n_clusters = max(int(n_clusters), 1)
    if n_clusters >= n:
        return linkage
    first = n - n_clusters
    members, roots = _clusters_after(linkage[:first], n)
    spread = alpha * float(np.mean(np.var(points, axis=0)))
    clusters = _SphericalClusters.of_partition(points, members, spread, beta)
    top = _agglomerate(clusters, clusters.all_pair_changes(), np.array(roots), first, n)
    return np.vstack([linkage[:first], top])


def _clusters_after(merges, n):
    """The rows of each cluster left by the linkage rows ``merges`` of ``n`` rows, and
    those clusters' ids, in the order of their ids."""
    members = {i: [i] for i in range(n)}
    for step, (a, b) in enumerate(merges[:, :2].astype(np.int64)):
        members[n + step] = members.pop(a) + members.pop(b)
    roots = sorted(members)
    return [np.array(members[root]) for root in roots], roots


def _agglomerate(clusters, changes, ids, first_step, n):
    """The linkage rows that merge the live clusters of ``clusters`` (slots with ids
    ``ids``, pair changes ``changes``) down to one: the merges after ``first_step``
    earlier ones of a tree of ``n`` rows, each the pair whose change is smallest."""
    n_slots = len(ids)
    nearest = np.argmin(changes, axis=1)
    smallest = changes[np.arange(n_slots), nearest]
    ids = ids.copy()
    linkage = np.zeros((n_slots - 1, 4))
    for index in range(n_slots - 1):
        step = first_step + index
        kept = int(np.argmin(smallest))
        gone = int(nearest[kept])
        kept, gone = min(kept, gone), max(kept, gone)
        linkage[index] = (*sorted((ids[kept], ids[gone])), step + 1,
                          clusters.size[kept] + clusters.size[gone])
        ids[kept] = n + step
        clusters.merge(kept, gone)
        changes[gone, :] = changes[:, gone] = np.inf
        smallest[gone] = np.inf
        live = clusters.live_except(kept)
        row = np.full(n_slots, np.inf)
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
    """The live clusters' sizes, means, scatters and criterion terms (VVV: ``n log det Σ``),
    by slot (a cluster of singletons lives in the lowest slot of its rows)."""

    def __init__(self, size, mean, scatter, term, spread, beta):
        self.spread, self.beta, self.dim = spread, beta, mean.shape[1]
        self.size, self.mean, self.scatter, self.term = size, mean, scatter, term
        self.live = np.ones(len(size), dtype=bool)

    @classmethod
    def singletons(cls, points, spread, beta):
        """Every row its own cluster."""
        n, p = points.shape
        return cls(np.ones(n), points.copy(), np.zeros((n, p, p)),
                   np.full(n, p * np.log(spread)), spread, beta)  # a singleton's n log det Σ

    @classmethod
    def of_partition(cls, points, members, spread, beta):
        """One cluster per array of row indices in ``members``."""
        size = np.array([len(rows) for rows in members], dtype=np.float64)
        mean = np.array([points[rows].mean(axis=0) for rows in members])
        centred = [points[rows] - centre for rows, centre in zip(members, mean)]
        scatter = np.array([part.T @ part for part in centred])
        clusters = cls(size, mean, scatter, None, spread, beta)
        clusters.term = clusters.criterion_terms(size, scatter)
        return clusters

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

        squared = squareform(pdist(self.mean, "sqeuclidean"))
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
        changes[~single] = self._union_changes(slot, others[~single])
        return changes - self.term[slot]

    def _union_changes(self, slot, others):
        """The changes, less ``term[slot]``, of merging cluster ``slot`` with each of
        ``others``, from the unions' scatters."""
        size, _, scatter = self.union(slot, others)
        return self.criterion_terms(size, scatter) - self.term[others]

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


class _SphericalClusters(_Clusters):
    """:class:`_Clusters` under the spherical (VII) criterion ``n p log(tr Σ / p)``, Σ
    regularised as the VVV criterion's."""

    def criterion_terms(self, size, scatter):
        trace = np.trace(scatter, axis1=1, axis2=2)
        shrink = self.spread + self.beta * trace / (size * self.dim)
        return size * self.dim * np.log((trace + self.dim * shrink) / (size * self.dim))

    def merge_changes(self, slot, others):
        return self._union_changes(slot, others) - self.term[slot]

    def all_pair_changes(self):
        """The (m, m) changes of merging two live clusters (∞ on the diagonal)."""
        n_slots = len(self.size)
        changes = np.full((n_slots, n_slots), np.inf)
        for slot in range(n_slots - 1):
            others = np.arange(slot + 1, n_slots)
            changes[slot, others] = changes[others, slot] = self.merge_changes(slot, others)
        return changes
