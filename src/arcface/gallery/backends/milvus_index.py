"""Milvus backend (pymilvus): a local milvus-lite file or a Milvus server/cluster, same code.

``uri`` is either a local file path ending in ``.db`` (milvus-lite, embedded, for development and
tests) or ``http://host:19530`` / a Zilliz Cloud endpoint (with ``token``) for scale-out. The collection
has an INT64 primary key ``id`` and a FLOAT_VECTOR field ``vector`` searched with the inner-product
metric (cosine for unit vectors). The gallery rebuilds the collection from its own files when it opens,
so Milvus only ever holds a copy. Every read asks for ``Strong`` consistency: a Milvus server's default
(``Bounded``) would let a search or count miss what was just written (milvus-lite never shows this; a real
server does, ``tests/gallery/test_milvus_server.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arcface.errors import DependencyError, InputError, require
from arcface.gallery.backends.base import check_ids, check_vectors, empty_result

_BATCH = 2048
_STRONG = "Strong"


class MilvusIndex:
    """Top-k inner-product search in a Milvus collection.

    Args:
        dim: vector length.
        uri: milvus-lite file (``/path/gallery.db``) or server URI (``http://host:19530``).
        collection: collection name (one per gallery).
        token: credentials for a server (``"user:password"`` or an API key); ``None`` for milvus-lite.
        index_type: Milvus index (``"FLAT"`` exact, ``"IVF_FLAT"``, ``"HNSW"``, ``"AUTOINDEX"``).
        index_params, search_params: passed through to Milvus (e.g. ``{"M": 32}``, ``{"ef": 128}``).
    """

    kind = "milvus"

    def __init__(
        self,
        dim: int,
        uri: str,
        collection: str = "arcface_gallery",
        token: str | None = None,
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> None:
        pymilvus = require("pymilvus", "milvus")
        self.dim, self.uri, self.collection = int(dim), str(uri), collection
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self._pymilvus = pymilvus
        kw: dict[str, Any] = {"uri": self.uri}
        if token:
            kw["token"] = token
        try:
            self._client = pymilvus.MilvusClient(**kw)
        except Exception as exc:  # pymilvus raises its own types, or ImportError without milvus-lite
            hint = " (local .db files need: pip install 'arcface[milvus]')" if self.uri.endswith(".db") else ""
            raise DependencyError(f"milvus backend: cannot connect to {self.uri!r}: {exc}{hint}") from exc
        self._count = 0
        if self._client.has_collection(collection):
            self._check_existing()
            self._count = self._row_count()
        else:
            self._create()

    def _check_existing(self) -> None:
        info = self._client.describe_collection(self.collection)
        for f in info.get("fields", []):
            if f.get("name") == "vector":
                dim = int(f.get("params", {}).get("dim", self.dim))
                if dim != self.dim:
                    raise InputError(
                        f"milvus backend: collection {self.collection!r} at {self.uri} holds {dim}-d "
                        f"vectors, this gallery {self.dim}-d"
                    )

    def _create(self) -> None:
        pm = self._pymilvus
        schema = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pm.DataType.INT64, is_primary=True)
        schema.add_field("vector", pm.DataType.FLOAT_VECTOR, dim=self.dim)
        params = self._client.prepare_index_params()
        params.add_index(field_name="vector", index_type=self.index_type, metric_type="IP", params=self.index_params)
        self._client.create_collection(self.collection, schema=schema, index_params=params, consistency_level=_STRONG)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def reset(self) -> None:
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)
        self._create()

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        x = check_vectors(vectors, self.dim)
        ids = check_ids(ids, x.shape[0])
        for s in range(0, len(ids), _BATCH):
            rows = [
                {"id": int(i), "vector": v.tolist()}
                for i, v in zip(ids[s : s + _BATCH].tolist(), x[s : s + _BATCH], strict=True)
            ]
            self._client.upsert(self.collection, rows)
        self._count = self._row_count()

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size:
            self._client.delete(self.collection, ids=[int(i) for i in ids.tolist()])
            self._count = self._row_count()

    def _row_count(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level=_STRONG)
        return int(res[0]["count(*)"]) if res else 0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "queries")
        sims_out, ids_out = empty_result(q.shape[0], k)
        if self._count == 0 or k <= 0:
            return sims_out, ids_out
        hits = self._client.search(
            self.collection,
            data=[row.tolist() for row in q],
            limit=min(k, self._count),
            search_params={"metric_type": "IP", "params": self.search_params},
            output_fields=[],
            consistency_level=_STRONG,
        )
        for r, row in enumerate(hits):
            for c, hit in enumerate(row):
                ids_out[r, c] = int(hit["id"])
                sims_out[r, c] = float(hit["distance"])
        return sims_out, ids_out

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
