"""Writing face embeddings to files; the format follows the file extension.

* ``.npz``: ``embeddings`` (N, D) float32, ``paths``, ``face_index``, ``bboxes`` (N, 4), ``scores``, ``kps``
  (N, 5, 2), ``recognizer_sha256``, ``error_paths``, ``error_messages``;
* ``.npy``: the ``(N, D)`` float32 embeddings alone (rows in the order ``embed`` prints them);
* ``.csv``: one row per face: ``path, face_index, score, x1, y1, x2, y2, e0 .. e{D-1}``;
* ``.parquet`` (needs pyarrow): columns ``path``, ``face_index``, ``score``, ``bbox`` (list of 4), ``embedding``
  (list of D float32).

Boxes are in pixels of the photo; embeddings are L2-normalised.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.io_utils import atomic_savez, atomic_write, atomic_write_text

FORMATS = (".npz", ".npy", ".csv", ".parquet")


def check_output(path: str | os.PathLike) -> Path:
    """``path`` if its extension names a known format (and pyarrow is there for .parquet), else InputError."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir():
        raise InputError(f"--out {p}: is a directory; give a file name ending in {', '.join(FORMATS)}")
    if ext not in FORMATS:
        raise InputError(f"--out {p}: unknown format {ext or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    if ext == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(f"--out {p}: writing .parquet needs pyarrow (pip install pyarrow)") from None
    return p


def write_embeddings(
    path: str | os.PathLike,
    rows: Sequence[tuple[str, int, Any]],
    dim: int,
    recognizer_sha256: str = "",
    errors: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``rows`` of ``(photo path, face index, Face)`` in the format of ``path``'s extension."""
    p = check_output(path)
    ext = p.suffix.lower()
    emb = np.stack([f.embedding for _, _, f in rows]).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    bboxes = np.array([f.bbox for _, _, f in rows], np.float32).reshape(-1, 4)
    scores = np.array([f.score for _, _, f in rows], np.float32)
    if ext == ".npz":
        atomic_savez(
            p,
            embeddings=emb,
            paths=np.array([r[0] for r in rows], dtype=str),
            face_index=np.array([r[1] for r in rows], np.int64),
            bboxes=bboxes,
            scores=scores,
            kps=np.array([f.kps for _, _, f in rows], np.float32).reshape(-1, 5, 2),
            recognizer_sha256=np.array(recognizer_sha256),
            error_paths=np.array([e["source"] for e in errors], dtype=str),
            error_messages=np.array([e["error"] for e in errors], dtype=str),
        )
    elif ext == ".npy":
        with atomic_write(p) as f:
            np.save(f, emb)
    elif ext == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "face_index", "score", "x1", "y1", "x2", "y2"] + [f"e{i}" for i in range(dim)])
        for (photo, idx, _), e, b, s in zip(rows, emb, bboxes, scores, strict=True):
            w.writerow([photo, idx, f"{s:.4f}", *(f"{v:.2f}" for v in b), *(repr(float(v)) for v in e)])
        atomic_write_text(p, buf.getvalue())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "path": [r[0] for r in rows],
                "face_index": pa.array([r[1] for r in rows], pa.int64()),
                "score": pa.array(scores),
                "bbox": pa.array(bboxes.tolist(), pa.list_(pa.float32())),
                "embedding": pa.array(emb.tolist(), pa.list_(pa.float32())),
            }
        )
        with atomic_write(p) as f:
            pq.write_table(table, f)
    return p
