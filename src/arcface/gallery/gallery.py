"""1:N identification: enrol identities, search faces against them with an open-set threshold.

A :class:`Gallery` keeps, for each identity, the unit embeddings of its enrolled images and a
*template*: the L2-normalised mean of those embeddings. Searching compares query embeddings with the
templates by cosine similarity (inner product of unit vectors, in ``[-1, 1]``); a best match below the
threshold is reported as identity ``"unknown"`` (open-set identification).

The gallery directory (see :mod:`arcface.gallery.store`) is the source of truth; the vector index
(numpy, FAISS or Milvus, see :mod:`arcface.gallery.backends`) is rebuilt from it on open and kept up
to date on every change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from arcface.errors import InputError
from arcface.gallery.backends import VectorIndex, make_index
from arcface.gallery.contract import EmbeddingContract
from arcface.gallery.store import GalleryStore, Identity, encode_array
from arcface.thresholds import check_threshold, threshold_for

#: Identity reported for a face whose best match is below the threshold.
UNKNOWN = "unknown"

#: File name of the saved FAISS index (a cache; the gallery's own files stay the source of truth).
INDEX_CACHE = "index-cache.npz"


def default_threshold(recognizer_sha256: str | None = None) -> float:
    """Default cosine threshold: the calibrated one of a recognizer (by file SHA-256), else the fallback
    (see :func:`arcface.thresholds.threshold_for`)."""
    return float(threshold_for(recognizer_sha256).value)


@dataclass(frozen=True)
class Match:
    """One gallery candidate for a query.

    Attributes:
        identity: the candidate's name, or ``"unknown"`` when ``similarity`` is below the threshold.
        similarity: cosine similarity between the query and the candidate's template.
        candidate: the candidate's name whatever the threshold.
    """

    identity: str
    similarity: float
    candidate: str

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "similarity": round(self.similarity, 6), "candidate": self.candidate}


@dataclass(frozen=True)
class SearchResult:
    """The answer for one query: the decision plus the top-k candidates, best first.

    ``identity`` is the best candidate when its similarity reaches the threshold, else ``"unknown"``;
    ``similarity`` is the best similarity (``None`` for an empty gallery).
    """

    identity: str
    similarity: float | None
    matches: list[Match] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.identity != UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "similarity": None if self.similarity is None else round(self.similarity, 6),
            "matches": [m.to_dict() for m in self.matches],
        }


def _check_name(name: Any, what: str = "identity name") -> str:
    if not isinstance(name, str):
        raise InputError(f"{what} must be a string, got {type(name).__name__}")
    clean = name.strip()
    if not clean:
        raise InputError(f"{what} must not be empty")
    if len(clean) > 256:
        raise InputError(f"{what} is longer than 256 characters")
    if any(unicodedata.category(c).startswith("C") for c in clean):
        raise InputError(f"{what} {name!r} contains control characters")
    if clean == UNKNOWN:
        raise InputError(f"{what} {UNKNOWN!r} is reserved for faces that match nobody")
    return clean


def _check_metadata(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise InputError("metadata must be a dict with string keys")
    try:
        return json.loads(json.dumps(dict(meta), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(f"metadata must be JSON-serialisable ({exc})") from exc


def _unit_rows(x: Any, dim: int | None, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{what}: expected a (D,) or (N, D) array of embeddings, got shape {np.shape(x)}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"{what}: embeddings have dimension {arr.shape[1]} but this gallery holds {dim}-d embeddings")
    if not np.isfinite(arr).all():
        raise InputError(f"{what}: embeddings contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        raise InputError(f"{what}: an embedding is (close to) all zeros")
    # rows already unit (to float32 rounding) are kept bit-exact
    norms = np.where(np.abs(norms - 1.0) < 1e-5, 1.0, norms)
    return (arr / norms).astype(np.float32)


F = TypeVar("F", bound=Callable[..., Any])


def _serialised(method: F) -> F:
    """Run a Gallery method under the instance's re-entrant mutex (one thread at a time)."""

    @functools.wraps(method)
    def wrapper(self: Gallery, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Gallery:
    """A persistent (or in-memory) set of identities searchable by face embedding.

    Args:
        path: gallery directory (created when absent and ``create``); ``None``: in memory only.
        contract: the model the caller's embeddings come from; refused (:class:`InputError`) when it
            conflicts with the gallery's stored contract. ``None``: accept the stored one (dimension
            is still checked).
        backend: ``"auto"`` (FAISS if installed, else numpy), ``"numpy"``, ``"faiss"`` or ``"milvus"``.
        backend_options: keyword arguments for the backend (FAISS: ``ann_threshold``, ``ann``,
            ``ef_search``, ``nprobe``...; Milvus: ``uri``, ``collection``, ``token``, ``index_type``).
            For Milvus without a ``uri`` the gallery uses a milvus-lite file ``<path>/milvus.db``;
            without a ``collection``, one named after the gallery directory's absolute path.
        threshold: default cosine threshold of :meth:`search` (``None``: :func:`default_threshold` of
            the stored or given model digest).
        create: create the gallery when ``path`` holds none.
        index_cache_min: on :meth:`close`, a FAISS index of at least this many identities is saved to
            ``<path>/index-cache.npz`` (with the gallery state it reflects) and loaded by the next open
            of the same state instead of being rebuilt (an HNSW/IVF build of 10^6 vectors takes minutes).

    Writes are durable when the method returns; concurrent writer processes are serialised by a file
    lock, threads sharing one Gallery by a mutex. Call :meth:`refresh` to see changes made by other
    processes since opening.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        contract: EmbeddingContract | None = None,
        backend: str = "auto",
        backend_options: Mapping[str, Any] | None = None,
        threshold: float | None = None,
        create: bool = True,
        index_cache_min: int = 50_000,
    ) -> None:
        self._mutex = threading.RLock()
        self._store = GalleryStore(path, create=create)
        self.path = self._store.path
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        if backend == "milvus" and "uri" not in self.backend_options:
            if self.path is None:
                raise InputError("milvus backend: an in-memory gallery needs backend_options={'uri': ...}")
            self.backend_options["uri"] = str(self.path / "milvus.db")
        if backend == "milvus" and "collection" not in self.backend_options and self.path is not None:
            # one collection per gallery directory, so galleries can share a Milvus server
            digest = hashlib.sha1(str(self.path.resolve()).encode("utf-8")).hexdigest()[:16]
            self.backend_options["collection"] = f"arcface_{digest}"
        if contract is not None and not isinstance(contract, EmbeddingContract):
            raise InputError("contract must be an EmbeddingContract")
        self._model = contract
        if contract is not None and self._store.contract is not None:
            self._store.contract.check_compatible(contract, "embeddings of the model given")
        if threshold is None:
            known = self._store.contract or contract
            threshold = default_threshold(known.model_sha256 if known else None)
        self.threshold = float(threshold)
        self._check_threshold(self.threshold)
        self.index_cache_min = int(index_cache_min)
        self._cached_key: str | None = None
        self._index: VectorIndex | None = None
        self._sync()

    # ------------------------------------------------------------------ basics
    @property
    def contract(self) -> EmbeddingContract | None:
        """The stored embedding contract (``None`` until the first enrolment of a new gallery)."""
        return self._store.contract

    @property
    def dim(self) -> int | None:
        c = self._store.contract or self._model
        return c.dim if c else None

    @property
    def index(self) -> VectorIndex | None:
        """The vector index (``None`` while the gallery has no dimension yet)."""
        return self._index

    def __len__(self) -> int:
        return len(self._store.identities)

    def __contains__(self, name: object) -> bool:
        return name in self._store.identities

    @property
    def names(self) -> list[str]:
        return sorted(self._store.identities)

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_serialised
    def close(self) -> None:
        """Release the index; a large FAISS index is first saved as a cache for the next open."""
        if self._index is not None:
            self._save_index_cache()
            self._index.close()
            self._index = None

    def _cache_key(self) -> str:
        options = sorted((k, repr(v)) for k, v in self.backend_options.items())
        return f"{self._store.state_key}|{self.backend}|{self.dim}|{options}"

    def _save_index_cache(self) -> None:
        index = self._index
        if self.path is None or index is None or not hasattr(index, "save"):
            return
        if len(index) < self.index_cache_min or self._cached_key == self._cache_key():
            return
        try:
            index.save(self.path / INDEX_CACHE, self._cache_key())
            self._cached_key = self._cache_key()
        except OSError:  # a cache: failing to write it only costs a rebuild next time
            pass

    @_serialised
    def refresh(self) -> None:
        """Load changes committed by other processes."""
        self._store.refresh()
        self._sync()

    @_serialised
    def compact(self) -> None:
        """Fold the journal into a fresh snapshot (done automatically as the journal grows)."""
        self._store.compact()
        self._sync()

    def _identity(self, name: str) -> Identity:
        ident = self._store.identities.get(name)
        if ident is None:
            raise InputError(f"no identity named {name!r} in the gallery")
        return ident

    def info(self, name: str) -> dict[str, Any]:
        """``{"name", "id", "images", "metadata", "created", "updated"}`` of one identity (times: UNIX s)."""
        ident = self._identity(name)
        return {
            "name": ident.name,
            "id": ident.id,
            "images": ident.count,
            "metadata": dict(ident.metadata),
            "created": ident.created,
            "updated": ident.updated,
        }

    def list(self) -> list[dict[str, Any]]:
        """:meth:`info` of every identity, sorted by name."""
        return [self.info(n) for n in self.names]

    def embeddings(self, name: str) -> np.ndarray:
        """The unit embeddings enrolled for ``name``, float32 ``(k, D)`` (a copy)."""
        return self._identity(name).embeddings.copy()

    def template(self, name: str) -> np.ndarray:
        """The L2-normalised mean embedding of ``name``, float32 ``(D,)`` (a copy)."""
        return self._identity(name).template.copy()

    def metadata(self, name: str) -> dict[str, Any]:
        return dict(self._identity(name).metadata)

    # ------------------------------------------------------------------ index upkeep
    def _sync(self) -> None:
        reloaded, changed = self._store.drain_changes()
        dim = self.dim
        if dim is None:
            return
        if self._index is None:
            self._index = make_index(self.backend, dim, **self.backend_options)
            reloaded = True
        idents = self._store.by_id
        if reloaded:
            cache = self.path / INDEX_CACHE if self.path is not None else None
            if cache is not None and cache.exists() and hasattr(self._index, "load"):
                if self._index.load(cache, self._cache_key()):
                    self._cached_key = self._cache_key()
                    return
            self._index.reset()
            todo = list(idents)
        else:
            todo = sorted(changed)
            gone = [i for i in todo if i not in idents]
            if gone:
                self._index.remove(np.asarray(gone, np.int64))
        live = [i for i in todo if i in idents]
        if live:
            ids = np.asarray(live, np.int64)
            self._index.upsert(ids, np.stack([idents[i].template for i in live]))

    # ------------------------------------------------------------------ writing
    def _contract_ops(self, dim: int, contract: EmbeddingContract | None) -> list[dict[str, Any]]:
        """Contract check for incoming embeddings; the ops that record a new/filled-in contract.

        A gallery whose stored contract names its model (digest or input spec) only accepts embeddings
        that come with a contract stating the same model (given here or at opening); a gallery made from
        raw embeddings (no model named) accepts any of the same dimension and learns the model's digest
        from the first enrolment that states one.
        """
        given = [c for c in (contract, self._model) if c is not None]
        stored = self._store.contract
        for c in given:
            if c.dim != dim:
                raise InputError(
                    f"embeddings have dimension {dim} but the model given ({c.describe()}) makes {c.dim}-d ones"
                )
        incoming = given[0] if given else EmbeddingContract(dim=dim)
        if stored is None:
            return [{"op": "contract", "contract": incoming.to_dict()}]
        if incoming.dim != stored.dim:
            stored.check_compatible(incoming)
        for c in given or [None]:
            stored.check_vouches_for(c)
        merged = stored.merged_with(incoming)
        return [] if merged == stored else [{"op": "contract", "contract": merged.to_dict()}]

    def enroll(
        self,
        name: str,
        embeddings: np.ndarray,
        metadata: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
        contract: EmbeddingContract | None = None,
    ) -> dict[str, Any]:
        """Enrol (or extend) identity ``name`` with one or more embeddings.

        Args:
            name: identity name (unique; ``"unknown"`` is reserved).
            embeddings: ``(D,)`` or ``(k, D)``; rows are L2-normalised before storing.
            metadata: JSON-able dict merged into the identity's metadata.
            replace: replace the identity's embeddings instead of adding to them.
            contract: the model that made ``embeddings`` (checked against the gallery's).
        Returns:
            :meth:`info` of the identity after the change (durably committed).
        """
        self.enroll_many({name: embeddings}, {name: metadata} if metadata else None, replace=replace, contract=contract)
        return self.info(_check_name(name))

    @_serialised
    def enroll_many(
        self,
        items: Mapping[str, np.ndarray],
        metadata: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        replace: bool = False,
        contract: EmbeddingContract | None = None,
    ) -> None:
        """Enrol several identities in one atomic, durable transaction (all or nothing)."""
        names = {_check_name(n): n for n in items}
        if len(names) != len(items):
            raise InputError("enroll_many: two names are equal after stripping white space")
        metadata = metadata or {}
        prepared = []
        for clean, orig in names.items():
            prepared.append((clean, orig, _check_metadata(metadata.get(orig))))
        with self._store.transaction() as store:
            ops: list[dict[str, Any]] = []
            dim = None
            next_id = store.next_id
            for clean, orig, meta in prepared:
                emb = _unit_rows(items[orig], dim or self.dim, f"embeddings of {clean!r}")
                if dim is None:
                    dim = emb.shape[1]
                    ops.extend(self._contract_ops(dim, contract))
                existing = store.identities.get(clean)
                if existing is None:
                    ident_id, next_id = next_id, next_id + 1
                else:
                    ident_id = existing.id
                ops.append(
                    {
                        "op": "enroll",
                        "name": clean,
                        "id": ident_id,
                        "emb": encode_array(emb),
                        "meta": meta,
                        "replace": bool(replace),
                    }
                )
            store.commit(ops)
        self._sync()

    @_serialised
    def remove(self, name: str) -> None:
        """Delete identity ``name`` (durably)."""
        with self._store.transaction() as store:
            if name not in store.identities:
                raise InputError(f"no identity named {name!r} in the gallery")
            store.commit([{"op": "remove", "name": name}])
        self._sync()

    @_serialised
    def rename(self, old: str, new: str) -> None:
        """Rename an identity, keeping its embeddings and metadata."""
        new = _check_name(new, "new name")
        with self._store.transaction() as store:
            if old not in store.identities:
                raise InputError(f"no identity named {old!r} in the gallery")
            if new == old:
                return
            if new in store.identities:
                raise InputError(f"cannot rename {old!r} to {new!r}: that name is taken")
            store.commit([{"op": "rename", "old": old, "new": new}])
        self._sync()

    @_serialised
    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Replace the metadata of ``name`` with a JSON-able dict."""
        meta = _check_metadata(metadata)
        with self._store.transaction() as store:
            if name not in store.identities:
                raise InputError(f"no identity named {name!r} in the gallery")
            store.commit([{"op": "meta", "name": name, "meta": meta}])
        self._sync()

    # ------------------------------------------------------------------ searching
    @staticmethod
    def _check_threshold(threshold: float) -> None:
        check_threshold(threshold)

    def search(self, query: np.ndarray, top_k: int = 5, threshold: float | None = None) -> SearchResult:
        """Identify one face embedding ``(D,)``; see :meth:`search_batch`."""
        q = np.asarray(query)
        if q.ndim != 1:
            raise InputError(f"search: expected one embedding of shape (D,), got {q.shape}; use search_batch")
        return self.search_batch(q[None, :], top_k, threshold)[0]

    @_serialised
    def search_batch(self, queries: np.ndarray, top_k: int = 5, threshold: float | None = None) -> list[SearchResult]:
        """Identify many face embeddings ``(Q, D)`` at once against the identity templates.

        Args:
            queries: embeddings (L2-normalised here), one row per face.
            top_k: candidates to return per query.
            threshold: cosine threshold of the open-set decision (``None``: the gallery's default).
        Returns:
            one :class:`SearchResult` per query, in order.
        """
        if int(top_k) < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        thr = self.threshold if threshold is None else float(threshold)
        self._check_threshold(thr)
        q = np.asarray(queries)
        if q.ndim != 2:
            raise InputError(f"search_batch: expected embeddings of shape (Q, D), got {q.shape}")
        if q.shape[0] == 0:
            return []
        q = _unit_rows(q, self.dim, "query")
        if self._index is None:  # closed (or never built): rebuild from the gallery's files
            self._sync()
        if self._index is None or len(self) == 0:
            return [SearchResult(UNKNOWN, None, []) for _ in range(q.shape[0])]
        sims, ids = self._index.search(q, int(top_k))
        by_id = self._store.by_id
        out = []
        for row_s, row_i in zip(sims.tolist(), ids.tolist(), strict=True):
            matches = [
                Match(by_id[i].name if s >= thr else UNKNOWN, float(s), by_id[i].name)
                for s, i in zip(row_s, row_i, strict=True)
                if i >= 0 and i in by_id
            ]
            if not matches:
                out.append(SearchResult(UNKNOWN, None, []))
            else:
                out.append(SearchResult(matches[0].identity, matches[0].similarity, matches))
        return out
