"""Options shared by sub-commands (pack selection, JSON output)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def image_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files of ``paths`` (files as given, folders listed recursively; see
    :func:`arcface.imageio.iter_image_files`); :class:`~arcface.errors.InputError` naming them when there are none."""
    from arcface.errors import InputError
    from arcface.imageio import iter_image_files

    files = iter_image_files(paths)
    if not files:
        raise InputError(f"no image files in {' '.join(map(str, paths))}")
    return files


def add_pack_options(p: argparse.ArgumentParser) -> None:
    """``--pack``, detector size/threshold and flip-TTA options for commands that run the pipeline."""
    g = p.add_argument_group("model")
    g.add_argument("--pack", default=None, help="model pack name or directory (default: $ARCFACE_PACK or buffalo_sc)")
    g.add_argument("--det-size", type=int, default=640, help="detector canvas side, multiple of 32 (default 640)")
    g.add_argument(
        "--det-threshold",
        type=float,
        default=None,
        help="detection confidence threshold (default: the detector's own, 0.5 for SCRFD, 0.8 for MTCNN)",
    )
    g.add_argument(
        "--det-sizes",
        type=_det_sizes,
        default="auto",
        metavar="auto|single|SIDES",
        help="detector canvases, each face from the largest that finds it: auto (default: --det-size plus 160, for "
        "faces that fill the photo), single, or comma-separated sides such as 160,640,1280 (small faces in large "
        "photos)",
    )
    g.add_argument(
        "--center-crop",
        type=float,
        default=None,
        metavar="FRACTION",
        help="last resort for a photo where no face is found: take its central square (FRACTION of the shorter "
        "side) as the face; results then say path=center_crop (default: off)",
    )
    g.add_argument("--flip", action="store_true", help="flip test-time augmentation for embeddings")
    g.add_argument(
        "--runtime",
        choices=("auto", "onnxruntime", "openvino"),
        default="auto",
        help="inference engine; auto (default): the faster installed engine on this CPU, measured once and cached "
        "('arcface models list' shows the choice and why); a command on one or two photos runs on onnxruntime, "
        "which starts sooner than openvino by more than openvino saves on them",
    )
    g.add_argument(
        "--precision",
        choices=("auto", "f32", "bf16", "int8"),
        default="auto",
        help="auto (default): f32, or bf16/int8 where the measured accuracy passes the bars; bf16 by name: OpenVINO "
        "on CPUs with AVX-512 BF16 or AMX (the recognizer; the detector stays f32); int8 by name: ONNX Runtime "
        "with the recognizer quantized once (needs onnx)",
    )
    g.add_argument(
        "--thresholds",
        default=None,
        metavar="FILE",
        help="thresholds file (from 'arcface calibrate --write FILE') searched first for the recognizer's cosine "
        "threshold (default: $ARCFACE_THRESHOLDS, then thresholds.json beside the recognizer, then the package's)",
    )


#: A command on at most this many photos runs on ONNX Runtime under ``--runtime auto`` (unless bf16 is asked for):
#: a process starts about 0.2 s sooner with it than with OpenVINO, even with OpenVINO's compiled models cached,
#: more than OpenVINO saves on two photos (``arcface verify`` on the wheel's photos: 0.33 against 0.55 s; OpenVINO
#: saves 5 ms on a one-face photo and 30 ms on 22 faces here; ``benchmarks/bench_cold_start.py``, AMD EPYC with
#: AVX-512 BF16).
FEW_PHOTOS = 2


def analyzer_from_args(args: argparse.Namespace, photos: int | None = None, **kw: Any):
    """A FaceAnalyzer configured from :func:`add_pack_options` arguments; ``photos``: how many photos the command
    will analyse, where known (see :data:`FEW_PHOTOS`)."""
    from arcface.pipeline import FaceAnalyzer

    runtime = args.runtime
    if runtime == "auto" and photos is not None and photos <= FEW_PHOTOS and args.precision != "bf16":
        runtime = "onnxruntime"
    return FaceAnalyzer(
        pack=args.pack,
        det_size=args.det_size,
        det_threshold=args.det_threshold,
        flip=args.flip,
        runtime=runtime,
        precision=args.precision,
        thresholds=args.thresholds,
        det_sizes=args.det_sizes,
        center_crop=args.center_crop,
        **kw,
    )


def _det_sizes(text: str) -> str | tuple[int, ...]:
    if text in ("auto", "single"):
        return text
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, single or comma-separated sides, got {text!r}") from None


def add_select_option(p: argparse.ArgumentParser, default: str | None = "largest") -> None:
    """``--select``: which face of a photo with several (a rule of :func:`arcface.face.select_face`); with
    ``default=None`` the option is off unless given (commands that otherwise skip or keep every face)."""
    from arcface.face import SELECT_RULES

    what = f"(default {default})" if default else "(default: group photos are not reduced to one face)"
    p.add_argument(
        "--select",
        choices=SELECT_RULES,
        default=default,
        help="which face of a photo with several: largest, center (nearest the centre) or center_largest "
        f"(the largest unless a smaller one sits much nearer the centre) {what}",
    )


def add_batch_options(p: argparse.ArgumentParser) -> None:
    """``--strict`` for commands that process many files (bad files are otherwise listed and skipped)."""
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 if any file cannot be read (default: list such files on stderr and go on)",
    )


def report_failures(failures: list[dict[str, Any]], strict: bool, succeeded: int) -> int | None:
    """Print one line per failed file on stderr; the exit code to return early with, or None to go on.

    Returns 2 when ``strict`` and something failed, or when nothing succeeded at all.
    """
    for f in failures:
        # library errors already start with the input's name; do not print it twice
        named = f["error"].startswith(f["source"])
        print(f"arcface: skipped {f['error'] if named else f['source'] + ': ' + f['error']}", file=sys.stderr)
    if failures and (strict or succeeded == 0):
        what = "--strict" if strict and succeeded else "no file could be read"
        print(f"arcface: error: {len(failures)} file(s) failed ({what})", file=sys.stderr)
        return 2
    return None


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
