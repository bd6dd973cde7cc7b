"""1:N face identification galleries and clustering.

* :class:`Gallery`: enrol identities (template = normalised mean embedding), search top-k by cosine
  with an open-set threshold, persisted crash-safely in a directory, searched through a pluggable
  vector index (numpy, FAISS, Milvus).
* :class:`EmbeddingContract`: which model a gallery's embeddings come from (mixing is refused).
* :func:`cluster_embeddings`: group unlabelled faces by identity.
"""

from arcface.gallery.cluster import cluster_embeddings
from arcface.gallery.contract import EmbeddingContract
from arcface.gallery.gallery import UNKNOWN, Gallery, Match, SearchResult, default_threshold

__all__ = [
    "UNKNOWN",
    "EmbeddingContract",
    "Gallery",
    "Match",
    "SearchResult",
    "cluster_embeddings",
    "default_threshold",
]
