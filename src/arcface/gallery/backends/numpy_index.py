"""Exact brute-force search with numpy: the dependency-free baseline backend."""

from __future__ import annotations

import numpy as np

from arcface.gallery.backends.base import check_ids, check_vectors, empty_result, top_k


class NumpyIndex:
    """All vectors in one float32 matrix; a query is one matrix product plus a partial sort.

    Memory: ``4 * D`` bytes per vector (plus growth slack). Exact. Removal moves the last row into the
    hole (O(D)).
    """

    kind = "numpy"

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.reset()

    def reset(self) -> None:
        self._vecs = np.zeros((0, self.dim), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._n = 0
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return self._n

    def _reserve(self, n: int) -> None:
        if n <= self._vecs.shape[0]:
            return
        cap = max(n, int(self._vecs.shape[0] * 1.5) + 16)
        vecs = np.zeros((cap, self.dim), np.float32)
        ids = np.full(cap, -1, np.int64)
        vecs[: self._n], ids[: self._n] = self._vecs[: self._n], self._ids[: self._n]
        self._vecs, self._ids = vecs, ids

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        x = check_vectors(vectors, self.dim)
        ids = check_ids(ids, x.shape[0])
        self._reserve(self._n + x.shape[0])
        if not any(i in self._pos for i in ids.tolist()):  # bulk path: all new
            start, end = self._n, self._n + len(ids)
            self._vecs[start:end], self._ids[start:end] = x, ids
            self._pos.update(zip(ids.tolist(), range(start, end)))
            self._n = end
            return
        for i, ident in enumerate(ids.tolist()):
            pos = self._pos.get(ident)
            if pos is None:
                pos = self._n
                self._n += 1
                self._pos[ident] = pos
                self._ids[pos] = ident
            self._vecs[pos] = x[i]

    def remove(self, ids: np.ndarray) -> None:
        for ident in np.asarray(ids, np.int64).reshape(-1).tolist():
            pos = self._pos.pop(ident, None)
            if pos is None:
                continue
            last = self._n - 1
            if pos != last:
                moved = int(self._ids[last])
                self._vecs[pos], self._ids[pos] = self._vecs[last], moved
                self._pos[moved] = pos
            self._ids[last] = -1
            self._n = last

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "queries")
        sims_out, ids_out = empty_result(q.shape[0], k)
        n = self._n
        if n == 0 or k <= 0:
            return sims_out, ids_out
        vals, cols = top_k(q @ self._vecs[:n].T, k)
        kk = vals.shape[1]
        sims_out[:, :kk] = vals
        ids_out[:, :kk] = self._ids[cols]
        return sims_out, ids_out

    def close(self) -> None:
        pass
