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
    g.add_argument("--det-threshold", type=float, default=0.5, help="detection confidence threshold (default 0.5)")
    g.add_argument("--flip", action="store_true", help="flip test-time augmentation for embeddings")


def analyzer_from_args(args: argparse.Namespace, **kw: Any):
    """A FaceAnalyzer configured from :func:`add_pack_options` arguments."""
    from arcface.pipeline import FaceAnalyzer

    return FaceAnalyzer(pack=args.pack, det_size=args.det_size, det_threshold=args.det_threshold, flip=args.flip, **kw)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
