"""Options shared by sub-commands (pack selection, JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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
    g.add_argument("--flip", action="store_true", help="flip test-time augmentation for embeddings")
    g.add_argument(
        "--runtime",
        choices=("auto", "onnxruntime", "openvino"),
        default="auto",
        help="inference engine; auto (default): the faster installed engine on this CPU, measured once and cached "
        "('arcface models list' shows the choice and why)",
    )
    g.add_argument(
        "--precision",
        choices=("auto", "f32", "bf16"),
        default="auto",
        help="auto (default): f32, or bf16 where the CPU has bf16 units and its measured accuracy passes the bars; "
        "bf16 by name: OpenVINO on CPUs with AVX-512 BF16 or AMX",
    )
    g.add_argument(
        "--thresholds",
        default=None,
        metavar="FILE",
        help="thresholds file (from 'arcface calibrate --write FILE') searched first for the recognizer's cosine "
        "threshold (default: $ARCFACE_THRESHOLDS, then thresholds.json beside the recognizer, then the package's)",
    )


def analyzer_from_args(args: argparse.Namespace, **kw: Any):
    """A FaceAnalyzer configured from :func:`add_pack_options` arguments."""
    from arcface.pipeline import FaceAnalyzer

    return FaceAnalyzer(
        pack=args.pack,
        det_size=args.det_size,
        det_threshold=args.det_threshold,
        flip=args.flip,
        runtime=args.runtime,
        precision=args.precision,
        thresholds=args.thresholds,
        **kw,
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
