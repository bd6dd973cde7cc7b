"""Group unlabelled face embeddings by identity (agglomerative clustering on cosine similarity).

Two methods, both cut at a cosine-similarity ``threshold``:

* ``"average"`` (default): average-linkage agglomerative clustering. Two clusters merge while the mean
  cosine similarity over all their cross pairs is at least ``threshold``. Robust to chaining: one
  look-alike pair does not merge two people. Memory ``4 * N^2`` bytes; for up to ~20,000 faces.
* ``"single"``: connected components of the graph "cosine >= threshold" (single linkage), found in
  blocks with label propagation; memory O(N + edges), for large N; prone to chaining.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from arcface.errors import InputError
from arcface.thresholds import check_threshold

Method = Literal["average", "single"]

#: Largest N accepted by average linkage (its similarity matrix takes 4*N^2 bytes).
MAX_AVERAGE_N = 20_000


def _unit(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"clustering: expected embeddings of shape (N, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("clustering: embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..C-1 by decreasing cluster size (ties: earliest member first)."""
    _, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)].astype(np.int64)


def _average_linkage(x: np.ndarray, threshold: float) -> np.ndarray:
    n = x.shape[0]
    sim = x @ x.T  # float32 (n, n): average similarity between current clusters
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n, np.float64)
    active = np.ones(n, bool)
    parent = np.arange(n)
    rowmax = sim.max(axis=1)
    rowarg = sim.argmax(axis=1)
    while True:
        i = int(np.argmax(rowmax))
        if not rowmax[i] >= threshold:
            break
        j = int(rowarg[i])
        merged = (size[i] * sim[i] + size[j] * sim[j]) / (size[i] + size[j])
        merged[[i, j]] = -np.inf
        merged[~active] = -np.inf
        sim[i, :] = merged
        sim[:, i] = merged
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        size[i] += size[j]
        active[j] = False
        parent[j] = i
        rowmax[j], rowarg[j] = -np.inf, j
        # Rows whose best partner was i or j must be re-scanned unless the merged cluster beats it.
        better = merged > rowmax
        rowmax[better], rowarg[better] = merged[better], i
        stale = active & ~better & ((rowarg == i) | (rowarg == j))
        stale[i] = True
        idx = np.flatnonzero(stale)
        if idx.size:
            rowarg[idx] = sim[idx].argmax(axis=1)
            rowmax[idx] = sim[idx, rowarg[idx]]
    # Follow merge pointers to each item's surviving cluster.
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _connected_components(x: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    n = x.shape[0]
    us, vs = [], []
    for s in range(0, n, block):
        sims = x[s : s + block] @ x[s:].T  # only pairs (a, b) with b >= a's block start
        a, b = np.nonzero(sims >= threshold)
        b = b + s
        a = a + s
        keep = b > a
        us.append(a[keep].astype(np.int64))
        vs.append(b[keep].astype(np.int64))
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    label = np.arange(n)
    while True:  # min-label propagation with pointer jumping
        m = np.minimum(label[u], label[v])
        new = label.copy()
        np.minimum.at(new, u, m)
        np.minimum.at(new, v, m)
        new = np.minimum(new, new[new])
        if np.array_equal(new, label):
            return label
        label = new


def cluster_embeddings(embeddings: np.ndarray, threshold: float = 0.3, method: Method = "average") -> np.ndarray:
    """Cluster face embeddings by identity.

    Args:
        embeddings: float ``(N, D)``; rows are L2-normalised here.
        threshold: cosine similarity in ``[-1, 1]``; pairs/clusters at least this similar are joined.
        method: ``"average"`` (average linkage) or ``"single"`` (connected components).
    Returns:
        int64 labels ``(N,)`` in ``0..C-1``, cluster 0 the largest.
    """
    check_threshold(threshold, "clustering: threshold")
    x = _unit(embeddings)
    if x.shape[0] == 0:
        return np.zeros(0, np.int64)
    if method == "average":
        if x.shape[0] > MAX_AVERAGE_N:
            raise InputError(
                f"clustering: average linkage is limited to {MAX_AVERAGE_N} faces (got {x.shape[0]}); "
                "use method='single'"
            )
        return _canonical(_average_linkage(x, float(threshold)))
    if method == "single":
        return _canonical(_connected_components(x, float(threshold)))
    raise InputError(f"clustering: method must be 'average' or 'single', got {method!r}")
