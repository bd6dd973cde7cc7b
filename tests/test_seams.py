"""The pipeline's seams: any Detector / Embedder can be injected; no import cycle anywhere in the package."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from arcface.detect import Detections, Detector
from arcface.embed import Embedder
from arcface.embed.onnx import OnnxEmbedder
from arcface.models.packs import load_pack
from arcface.pipeline import FaceAnalyzer

SRC = Path(__file__).resolve().parents[1] / "src" / "arcface"


class CountingDetector:
    """A foreign detector: wraps another one and counts calls (only the protocol is used)."""

    has_kps = True
    prefers_batches = False

    def __init__(self, inner: Detector) -> None:
        self.inner, self.calls = inner, 0

    def detect(self, image_rgb: np.ndarray) -> Detections:
        return self.detect_many([image_rgb])[0]

    def detect_many(self, images_rgb: list[np.ndarray], batch_size: int = 8) -> list[Detections]:
        self.calls += len(images_rgb)
        return self.inner.detect_many(images_rgb, batch_size)


class NegatedEmbedder:
    """A foreign embedder: the pack's embeddings, negated (a different model as far as anyone can tell)."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.inner, self.spec = inner, inner.spec

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray:
        return -self.inner.embed(crops, flip=flip, batch_size=batch_size)


def test_injected_parts_are_used_and_described(analyzer, wheel_images) -> None:
    det = CountingDetector(analyzer.detector)
    emb = NegatedEmbedder(analyzer.embedder)
    assert isinstance(det, Detector) and isinstance(emb, Embedder)
    fa = FaceAnalyzer(detector=det, embedder=emb)
    image = wheel_images["gdp.jpg"]
    mine, ref = fa.analyze(image), analyzer.analyze(image)
    assert det.calls == 1 and len(mine) == len(ref) == 5
    for a, b in zip(mine, ref, strict=True):
        np.testing.assert_array_equal(a.bbox, b.bbox)
        np.testing.assert_allclose(a.embedding, -b.embedding, atol=1e-6)
    assert fa.pack.name == "custom" and fa.pack.source == "injected" and fa.pack.recognizer_sha256 == ""
    assert fa.self_test()["recognizer"] == "ok"


def test_one_injected_part_keeps_the_packs_other_part(wheel_images) -> None:
    pack = load_pack()
    emb = OnnxEmbedder(pack.recognizer, spec=pack.recognizer_spec)
    fa = FaceAnalyzer(embedder=emb)  # the same recognizer file: the pack record is the pack itself
    assert fa.pack == pack and fa.pack.recognizer_sha256 == pack.recognizer_sha256
    fb = FaceAnalyzer(detector=CountingDetector(fa.detector))
    assert fb.pack.name == "buffalo_sc+custom" and fb.pack.recognizer_sha256 == pack.recognizer_sha256


def test_a_detector_without_landmarks_is_refused() -> None:
    class Boxes(CountingDetector):
        has_kps = False

    with pytest.raises(Exception, match="no landmarks"):
        FaceAnalyzer(detector=Boxes(None))  # type: ignore[arg-type]


def _import_graph(lazy: bool) -> dict[str, set[str]]:
    """Module -> arcface modules it imports (module level; with ``lazy`` also inside functions)."""
    mods: dict[str, Path] = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree) if lazy else tree.body:
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_pkg else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    target = full if full in mods else base
                    if target in mods:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_even_through_lazy_imports() -> None:
    graph = _import_graph(lazy=True)
    assert len(graph) > 80  # the whole package was read
    assert _cycles(graph) == []
    # the test can see a cycle: two modules importing each other inside functions
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_gallery_does_not_build_an_analyzer() -> None:
    graph = _import_graph(lazy=True)
    for mod in [m for m in graph if m.startswith("arcface.gallery")]:
        assert "arcface.pipeline" not in graph[mod], mod
