"""FaceAnalyzer: detector + aligner + embedder composed, with batched multi-image analysis."""

from __future__ import annotations

import copy
import os
import threading
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcface.align import align_faces
from arcface.detect.base import Detector, center_crop_detection
from arcface.embed.base import Embedder
from arcface.embed.onnx import OnnxEmbedder
from arcface.errors import InputError, ModelError, first_line
from arcface.face import Face
from arcface.imageio import COLORS, ImageInput, load_image
from arcface.models import detector_family, resolve_pack
from arcface.models.packs import Pack, sha256_file
from arcface.runtime import REFERENCE, EngineChoice, choose_engine
from arcface.runtime.choice import check_engine_names
from arcface.runtime.sessions import default_threads, get_session, role_precision
from arcface.spec import SCRFD_DETECTION
from arcface.thresholds import Threshold, agreement_for, threshold_for


@dataclass(frozen=True)
class ImageFailure:
    """An input that could not be analysed: its position, its name and why (the error's message)."""

    index: int
    source: str
    reason: str

    def to_dict(self) -> dict:
        return {"index": self.index, "source": self.source, "error": self.reason}


class AnalysisBatch(list):
    """What :meth:`FaceAnalyzer.analyze_many` returns: a list with one ``list[Face]`` per input image.

    ``errors`` lists the inputs that could not be read (``on_error="skip"``); their entry is ``[]``.
    """

    def __init__(self, items: Iterable[list[Face]] = (), errors: list[ImageFailure] | None = None) -> None:
        super().__init__(items)
        self.errors: list[ImageFailure] = list(errors or [])

    @property
    def failed(self) -> set[int]:
        """Indices of the inputs listed in ``errors``."""
        return {e.index for e in self.errors}


class FaceAnalyzer:
    """Detect, align and embed faces: a detector and an embedder composed (a pack's, or your own).

    Args:
        pack: pack name, directory or :class:`~arcface.models.packs.Pack` (default: ``buffalo_sc``, built in); it
            provides the parts not given below and names the models in results and galleries.
        det_size: detector canvas side in pixels (multiple of 32) or ``(width, height)``.
        det_threshold: minimum detection confidence in ``[0, 1]`` (``None``: the detector family's own default,
            0.5 for SCRFD, 0.8 for MTCNN's final stage).
        max_faces: keep at most this many (largest) faces per image; 0 keeps all.
        min_face_size: ignore faces smaller than this many pixels on the shorter box side.
        flip: flip test-time augmentation for embeddings (sum of original and mirror, normalised).
        batch_size: recognition batch size.
        threads: ONNX Runtime threads per session (default: all cores).
        detector: any :class:`arcface.detect.Detector` with landmarks, used instead of the pack's (the
            ``det_*``, ``max_faces`` and ``min_face_size`` options are then the detector's own business).
        embedder: any :class:`arcface.embed.Embedder`, used instead of the pack's recognizer.
        runtime, precision: the engine of the pack's models: ``"onnxruntime"`` (default: the reference the
            thresholds are calibrated with), ``"openvino"`` or ``"auto"`` (the faster on this machine, measured
            once and cached; see :mod:`arcface.runtime.choice`), in ``"f32"``, ``"bf16"`` (OpenVINO, CPUs with
            bf16 units; the recognizer in bf16, the detector in f32), ``"int8"`` (ONNX Runtime, the recognizer
            quantized once and cached; needs ``onnx``) or
            ``"auto"`` (bf16/int8 only where its measured accuracy passes the bars). The choice and
            its reason are :attr:`engine`.
        thresholds: thresholds file(s) to look the recognizer's cosine threshold up in first (default:
            ``$ARCFACE_THRESHOLDS``); see :mod:`arcface.thresholds` for the search order. The result is
            :attr:`threshold`.
        decode_ahead: images :meth:`analyze_many` decodes ahead in a background thread while the models run
            (0: none); memory holds at most this many extra decoded images.
        det_sizes: multi-resolution detection of the pack's SCRFD detector: ``"auto"`` (the ``det_size`` canvas
            plus a 160x160 one; each face from the largest canvas that finds it), ``"single"``, or canvas sides
            such as ``(160, 640, 1280)`` (see :mod:`arcface.detect.scrfd`).
        center_crop: the opt-in last resort for a photo where no stage finds a face: its central square of side
            ``center_crop`` x the shorter image side is taken as the face (template landmarks, score 0,
            ``Face.path == "center_crop"``); ``None`` (default): such a photo has no face.
        lanes: :meth:`analyze_many` on ONNX Runtime (CPU) splits its images over this many lanes running at once,
            image ``i`` in lane ``i % lanes``, each on one-thread sessions of the same models: the detector gains
            only 1.2x from a second thread, so on 2 cores two lanes of one thread each analyse a folder faster
            than one lane of two (``benchmarks/bench_folder.py``). ``None`` (default): one lane per thread where
            the analyzer runs the pack's own SCRFD detector and ONNX recognizer on ONNX Runtime's CPU provider
            with 2 to :data:`MAX_LANES` threads, on batches of at least twice as many images; else one lane (the
            models' own threads). ``1``: always one lane. Faces and landmarks are the same either way; embeddings
            agree to cosine 0.9999998 (a different thread count sums in another order).

    Images are paths, encoded bytes or uint8 RGB arrays (see :func:`arcface.imageio.load_image`).
    """

    def __init__(
        self,
        pack: str | os.PathLike | Pack | None = None,
        det_size: int | tuple[int, int] = 640,
        det_threshold: float | None = None,
        max_faces: int = 0,
        min_face_size: float = 0.0,
        flip: bool = False,
        batch_size: int = 128,
        threads: int | None = None,
        *,
        detector: Detector | None = None,
        embedder: Embedder | None = None,
        runtime: str = "onnxruntime",
        precision: str = "f32",
        thresholds: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        decode_ahead: int = 2,
        det_sizes: str | tuple[int, ...] = "auto",
        center_crop: float | None = None,
        lanes: int | None = None,
    ) -> None:
        if center_crop is not None and not 0.0 < center_crop <= 1.0:
            raise InputError(f"center_crop must be a fraction in (0, 1] of the shorter image side, got {center_crop}")
        if lanes is not None and (not isinstance(lanes, int) or lanes < 1):
            raise InputError(f"lanes must be a whole number >= 1 or None (automatic), got {lanes!r}")
        #: Lanes of :meth:`analyze_many` (``None``: automatic; see the class docstring).
        self.lanes = lanes
        self._threads = int(threads or default_threads())
        #: Fraction of the shorter side taken as the face when nothing is detected (``None``: off).
        self.center_crop = center_crop
        # the pack supplies the parts not injected (and names them); with both injected it is only loaded if given
        needs_pack = pack is not None or detector is None or embedder is None
        base_pack = (pack if isinstance(pack, Pack) else resolve_pack(pack)) if needs_pack else None
        #: The engine running the pack's models and why (:class:`arcface.runtime.EngineChoice`).
        self.engine: EngineChoice = pack_engine(base_pack, runtime, precision, threads, thresholds)
        runtime, precision = self.engine.runtime, self.engine.precision
        own_detector = detector is None
        if detector is None:
            assert base_pack is not None
            options: dict = {
                "input_size": det_size,
                "max_faces": max_faces,
                "min_face_size": min_face_size,
                "runtime": runtime,
                "precision": role_precision("detector", precision),  # bf16 and int8 apply to the recognizer only
            }
            if det_threshold is not None:
                options["score_threshold"] = det_threshold
            if det_sizes != "auto":
                if base_pack.detector_family != "scrfd":
                    raise InputError(
                        f"det_sizes applies to SCRFD detectors; {base_pack.detector_family} runs its own image pyramid"
                    )
                options["sizes"] = det_sizes
            detector = detector_family(base_pack.detector_family).build(
                base_pack.detector, base_pack.detector_spec, threads=threads, **options
            )
        own_embedder = embedder is None
        #: both models are the pack's, built here (lanes copy them onto one-thread sessions; injected ones are not)
        self._own_models = own_embedder and own_detector
        if not detector.has_kps:
            raise InputError(f"{_model_name(detector)}: detector has no landmarks; alignment needs 5 keypoints")
        if embedder is None:
            assert base_pack is not None
            embedder = OnnxEmbedder(
                base_pack.recognizer,
                spec=base_pack.recognizer_spec,
                threads=threads,
                runtime=runtime,
                precision=precision,
            )
        self.detector: Detector = detector
        self.embedder: Embedder = embedder
        self.pack = describe_parts(base_pack, detector, embedder)
        self.flip = flip
        self.batch_size = batch_size
        #: Images decoded ahead in a background thread by :meth:`analyze_many` (0: decode in the caller's thread).
        self.decode_ahead = decode_ahead
        self.crop_size = (self.embedder.spec.input_size or (112, 112))[0]
        rec_path = self.pack.recognizer if self.pack.recognizer_sha256 else None
        #: The recognizer's cosine decision threshold, with its provenance.
        self.threshold: Threshold = threshold_for(
            self.pack.recognizer_sha256 or None,
            rec_path,
            thresholds,
            engine=self.engine.engine if own_embedder else REFERENCE,
        )

    def self_test(self) -> dict:
        """Run the detector and the recognizer once on synthetic input; raise :class:`ModelError` if unusable.

        Catches what a model file's header does not show (a recognizer expecting another input size, a
        graph that fails at run time, an output of the wrong shape) before any user request is served.
        Returns ``{"detector": "ok", "recognizer": "ok", "embedding_dim": D}``.
        """
        side = self.crop_size
        ramp = np.linspace(0, 255, side, dtype=np.float32)
        crop = np.stack(
            [np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2, np.outer(ramp, ramp) / 255], -1
        )
        crop = crop.astype(np.uint8)[None]
        rec = self.pack.recognizer
        try:
            emb = self.embedder.embed(crop)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"recognizer {rec}: fails on a {side}x{side} crop ({first_line(exc)})") from exc
        dim = self.embedder.dim
        if emb.shape != (1, dim) or not np.isfinite(emb).all() or abs(float(np.linalg.norm(emb)) - 1) > 1e-3:
            raise ModelError(f"recognizer {rec}: gives an unusable embedding (shape {emb.shape}, expected (1, {dim}))")
        try:
            self.detector.detect(np.zeros((64, 64, 3), np.uint8))
        except Exception as exc:
            raise ModelError(f"detector {self.pack.detector}: fails on a blank image ({first_line(exc)})") from exc
        return {"detector": "ok", "recognizer": "ok", "embedding_dim": dim}

    def analyze(
        self,
        image: ImageInput,
        with_crops: bool = False,
        embed: bool = True,
        color: str = "rgb",
        fallbacks: bool = True,
    ) -> list[Face]:
        """All faces of one image, in descending detection score (``color``, ``fallbacks``: see
        :meth:`analyze_many`)."""
        return self.analyze_many([image], with_crops=with_crops, embed=embed, color=color, fallbacks=fallbacks)[0]

    def analyze_many(
        self,
        images: Iterable[ImageInput],
        with_crops: bool = False,
        embed: bool = True,
        progress: bool = False,
        on_error: str = "raise",
        color: str = "rgb",
        fallbacks: bool = True,
    ) -> AnalysisBatch:
        """Faces of several images; the faces of all images are embedded together in large batches.

        Args:
            images: paths, encoded bytes or uint8 RGB ``(H, W, 3)`` arrays (see :func:`arcface.imageio.load_image`).
            with_crops: keep each face's aligned uint8 RGB 112x112 crop in ``Face.crop``.
            embed: compute ``Face.embedding`` (float32, L2-normalised); ``False`` only detects.
            progress: show a progress bar (stderr).
            on_error: ``"raise"`` stops at the first unreadable input (:class:`InputError` naming it);
                ``"skip"`` goes on, gives the input an empty face list and records it in ``.errors``.
            color: channel order of array inputs: ``"rgb"`` (default) or ``"bgr"`` for arrays from
                ``cv2.imread`` / ``cv2.VideoCapture`` (a BGR array taken as RGB embeds measurably worse).
            fallbacks: where the detector's first pass finds no face, run its last-resort stages (SCRFD: padded
                retry, low threshold) and the opt-in centre crop. ``False`` for inputs that often hold no face
                (video frames): those stages would run on every empty frame, and their rare false faces, found
                only where nothing else was, land there (on 84 face-free images, ../shared/data's photos with
                the faces painted over and textures, the first pass found 1 false face, the fallbacks 4 more;
                ``tests/test_hard_photos.py``).
        Returns:
            An :class:`AnalysisBatch`: one list of :class:`Face` per image, in input order; faces in
            descending detection score, coordinates in pixels of that image; ``.errors`` for skipped inputs.
        """
        if on_error not in ("raise", "skip"):
            raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if color not in COLORS:
            raise InputError(f"color must be 'rgb' or 'bgr', got {color!r}")
        images = list(images)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(images), unit="img", desc="analyze", leave=False)
        lock = threading.Lock()

        def tick(n: int) -> None:
            if bar is not None:
                with lock:
                    bar.update(n)

        parts = self._lane_parts(len(images))
        options = {"with_crops": with_crops, "embed": embed, "color": color, "fallbacks": fallbacks}
        options["stop_at_error"] = on_error == "raise"
        try:
            if len(parts) == 1:
                per_image = self._analyze_lane(images, *parts[0], decode_ahead=self.decode_ahead, tick=tick, **options)
            else:  # lane k takes images k, k + n, k + 2n, ...; the other lanes' models overlap its decoding
                n = len(parts)
                with ThreadPoolExecutor(max_workers=n, thread_name_prefix="arcface-lane") as pool:
                    futures = [
                        pool.submit(self._analyze_lane, images[k::n], *part, decode_ahead=0, tick=tick, **options)
                        for k, part in enumerate(parts)
                    ]
                    done = [f.result() for f in futures]
                per_image = []
                for i in range(len(images)):
                    lane = done[i % n]
                    if i // n >= len(lane):  # that lane stopped at an unreadable input (a later one)
                        break
                    per_image.append(lane[i // n])
        finally:
            if bar is not None:
                bar.close()
        results = AnalysisBatch()
        for i, item in enumerate(per_image):
            if isinstance(item, InputError):
                if on_error == "raise":
                    raise item  # the first unreadable input, in input order
                results.errors.append(ImageFailure(i, _name(images[i], f"#{i}"), str(item)))
                item = []
            results.append(item)
        return results

    def _lane_parts(self, n_images: int) -> list[tuple[Detector, Embedder]]:
        """The (detector, embedder) of each lane :meth:`analyze_many` runs ``n_images`` images in (see ``lanes``;
        injected models keep one lane: their precision and settings are their own)."""
        lanes = self.lanes if self._own_models else 1
        return _lane_parts(self.detector, self.embedder, self.engine, self._threads, lanes, n_images)

    def _analyze_lane(
        self,
        images: list[ImageInput],
        detector: Detector,
        embedder: Embedder,
        *,
        decode_ahead: int,
        tick,
        with_crops: bool,
        embed: bool,
        color: str,
        fallbacks: bool,
        stop_at_error: bool,
    ) -> list[list[Face] | InputError]:
        """:meth:`analyze_many`'s work on ``images`` with one detector and embedder: per image its faces, or the
        :class:`InputError` that made it unreadable (the list ends there when ``stop_at_error``)."""
        out: list[list[Face] | InputError] = []
        pending_crops: list[np.ndarray] = []
        pending_faces: list[Face] = []
        # Recognition is batched across images either way; detection only where the detector says it pays off.
        det_batch = 8 if detector.prefers_batches else 1
        decoded = _decode_ahead(images, color, decode_ahead)
        extra = {} if fallbacks or not getattr(detector, "has_fallbacks", False) else {"fallbacks": False}
        try:
            for start in range(0, len(images), det_batch):
                chunk = [next(decoded) for _ in images[start : start + det_batch]]
                if stop_at_error and any(isinstance(img, InputError) for img in chunk):
                    first = next(k for k, img in enumerate(chunk) if isinstance(img, InputError))
                    return out + [[]] * first + [chunk[first]]  # the results are dropped: the caller raises
                readable = [img for img in chunk if not isinstance(img, InputError)]
                found = iter(detector.detect_many(readable, batch_size=det_batch, **extra) if readable else [])
                for img in chunk:
                    if isinstance(img, InputError):
                        out.append(img)
                        continue
                    det = next(found)
                    if not len(det) and self.center_crop is not None and fallbacks:
                        det = center_crop_detection(img.shape[:2], self.center_crop)
                    crops = align_faces(img, det.kps, self.crop_size) if len(det) else None
                    faces = []
                    size = (int(img.shape[1]), int(img.shape[0]))
                    for i in range(len(det)):
                        face = Face(det.boxes[i], float(det.scores[i]), det.kps[i], path=det.path, image_size=size)
                        if with_crops:
                            face.crop = crops[i]
                        faces.append(face)
                    if embed and len(det):
                        pending_crops.append(crops)
                        pending_faces.extend(faces)
                    out.append(faces)
                if embed and sum(len(c) for c in pending_crops) >= self.batch_size:
                    self._embed_pending(embedder, pending_crops, pending_faces)
                tick(len(chunk))
            if embed:
                self._embed_pending(embedder, pending_crops, pending_faces)
        finally:
            decoded.close()
        return out

    def _embed_pending(self, embedder: Embedder, crops: list[np.ndarray], faces: list[Face]) -> None:
        if not faces:
            return
        emb = embedder.embed(np.concatenate(crops), flip=self.flip, batch_size=self.batch_size)
        for face, e in zip(faces, emb):
            face.embedding = e
        crops.clear()
        faces.clear()

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, D)`` of already aligned uint8 RGB crops ``(N, 112, 112, 3)``."""
        return self.embedder.embed(crops, flip=self.flip, batch_size=self.batch_size)

    def verify(
        self,
        a: ImageInput,
        b: ImageInput,
        threshold: float | None = None,
        color: str = "rgb",
        select: str = "largest",
    ):
        """Compare one face of ``a`` with one face of ``b``: the largest of each, or the one ``select`` picks
        (``"center"``, ``"center_largest"``: see :func:`arcface.face.select_face`).

        ``threshold``: a cosine in ``[-1, 1]``; ``None`` uses :attr:`threshold`. ``color``: channel order of
        array inputs (``"rgb"`` or OpenCV's ``"bgr"``).
        Returns a :class:`arcface.verify.VerifyResult` (cosine similarity, decision, threshold used).
        Raises :class:`NoFaceError` naming the image without a face.
        """
        from arcface.verify import verify_faces

        faces_a, faces_b = self.analyze_many([a, b], color=color)
        chosen = self.threshold if threshold is None else threshold
        return verify_faces(faces_a, faces_b, chosen, names=(_name(a, "a"), _name(b, "b")), select=select)


def pack_engine(
    pack: Pack | None,
    runtime: str,
    precision: str,
    threads: int | None,
    thresholds: str | os.PathLike | Sequence[str | os.PathLike] | None,
) -> EngineChoice:
    """The engine for the pack's ONNX models (measured when ``"auto"``); by name otherwise."""
    check_engine_names(runtime, precision)
    if "auto" not in (runtime, precision) or pack is None:
        rt = "onnxruntime" if runtime == "auto" else runtime
        pr = "f32" if precision == "auto" else precision
        return EngineChoice(rt, pr, "chosen by name" if (rt, pr) == (runtime, precision) else "no pack models")
    onnx = [p for p in (pack.recognizer, pack.detector) if Path(p).suffix.lower() == ".onnx" and Path(p).is_file()]
    if pack.recognizer not in onnx:
        return EngineChoice("onnxruntime", "f32", "the recognizer is not an ONNX file")
    agreement = agreement_for(pack.recognizer_sha256 or None, pack.recognizer, thresholds)
    detector = pack.detector if pack.detector in onnx else None
    return choose_engine(pack.recognizer, detector, runtime, precision, threads, agreement)


#: Most threads for which :meth:`FaceAnalyzer.analyze_many` picks one-thread lanes by itself (2 measured).
MAX_LANES = 4


def _lane_parts(
    detector: Detector, embedder: Embedder, engine: EngineChoice, threads: int, lanes: int | None, n_images: int
) -> list[tuple[Detector, Embedder]]:
    """The (detector, embedder) of each lane of an ``analyze_many`` call (see ``FaceAnalyzer(lanes=)``): copies of
    the analyzer's own SCRFD and ONNX recognizer on one-thread ONNX Runtime CPU sessions, or its own pair alone."""
    from arcface.detect.scrfd import SCRFD

    n = lanes if lanes is not None else (threads if 2 <= threads <= MAX_LANES else 1)
    n = min(n, n_images // 2) if lanes is None else min(n, n_images)
    cpu = ["CPUExecutionProvider"]
    if (
        n < 2
        or engine.runtime != "onnxruntime"
        or type(detector) is not SCRFD
        or type(embedder) is not OnnxEmbedder
        or detector.session.get_providers() != cpu
        or embedder.session.get_providers() != cpu
    ):
        return [(detector, embedder)]
    det_session = get_session(
        detector.model_path, 1, cpu, precision=role_precision("detector", engine.precision), pixels=detector.spec
    )
    emb_session = get_session(embedder.model_path, 1, cpu, precision=engine.precision)
    parts = []
    for _ in range(n):  # one-thread sessions run in the calling thread, so the lanes may share them
        det, emb = copy.copy(detector), copy.copy(embedder)
        det.session, emb.session = det_session, emb_session
        parts.append((det, emb))
    return parts


def _decode_ahead(images: list[ImageInput], color: str, ahead: int) -> Generator[np.ndarray | InputError, None, None]:
    """The decoded images in order (an :class:`InputError` in place of an unreadable one), decoding up to
    ``ahead`` images in a background thread while the caller runs the models on the previous ones: JPEG
    decoding and ONNX inference both release the GIL, so a folder runs at nearly model speed. At most
    ``ahead`` decoded images wait in memory; closing the generator cancels the rest."""

    def load(src: ImageInput) -> np.ndarray | InputError:
        try:
            return load_image(src, color=color)
        except InputError as exc:
            return exc

    if ahead <= 0 or len(images) < 2:
        for src in images:
            yield load(src)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arcface-decode")
    try:
        pending: deque = deque(pool.submit(load, src) for src in images[:ahead])
        for src in images[ahead:]:
            done = pending.popleft()
            pending.append(pool.submit(load, src))
            yield done.result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _model_name(part: object) -> str:
    return str(getattr(part, "model_path", None) or type(part).__name__)


def describe_parts(pack: Pack | None, detector: Detector, embedder: Embedder) -> Pack:
    """The :class:`Pack` record of an analyzer's parts: ``pack`` itself when both parts are its own, else a
    record naming the injected part(s) (file path and SHA-256 when the part has a model file)."""
    det_path = getattr(detector, "model_path", None)
    rec_path = getattr(embedder, "model_path", None)
    if pack is not None and str(pack.detector) == str(det_path) and str(pack.recognizer) == str(rec_path):
        return pack
    rec_sha = sha256_file(rec_path) if rec_path and Path(rec_path).is_file() else ""
    det_sha = sha256_file(det_path) if det_path and Path(det_path).is_file() else ""
    return Pack(
        name=f"{pack.name}+custom" if pack is not None else "custom",
        source="injected",
        detector=Path(det_path or type(detector).__name__),
        recognizer=Path(rec_path or type(embedder).__name__),
        detector_spec=getattr(detector, "spec", pack.detector_spec if pack else SCRFD_DETECTION),
        recognizer_spec=embedder.spec,
        detector_sha256=det_sha,
        recognizer_sha256=rec_sha,
        verified=False,
        licence="see the licences of the injected models",
    )


def _name(src: ImageInput, default: str) -> str:
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else f"image {default}"
