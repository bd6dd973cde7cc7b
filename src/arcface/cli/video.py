"""``arcface video``: track, identify and blur faces in video files, frame folders, webcams and streams."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arcface.cli.common import add_pack_options, analyzer_from_args, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "video",
        help="track and identify faces in a video, webcam or stream; events, annotated or blurred output",
        description="Detect faces every N frames, follow them as tracks, identify each track from its best faces "
        "against a gallery (open-set: 'unknown' below the threshold) and report one event per track.",
    )
    p.add_argument("source", help="video file, folder of frames, webcam index (0) or stream URL (rtsp://, http://)")
    p.add_argument("--gallery", type=Path, default=None, help="gallery directory to identify tracks against")
    p.add_argument("--out", type=Path, default=None, help="write the annotated (or blurred) video here (.mp4/.avi)")
    p.add_argument("--events", type=Path, default=None, help="write one JSON object per finished track (JSON lines)")
    p.add_argument("--blur", choices=("none", "all", "unknown"), default="none", help="privacy mode for --out")
    p.add_argument("--exempt", type=Path, default=None, help="gallery of people left visible with --blur unknown")
    p.add_argument("--detect-every", type=int, default=1, help="run the detector every N frames (default 1)")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this much video time")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the gallery's)")
    p.add_argument("--json", action="store_true", help="print a JSON summary with every event")
    add_pack_options(p)
    p.set_defaults(func=cmd_video)


def cmd_video(args: argparse.Namespace) -> int:
    from arcface.gallery import EmbeddingContract, Gallery
    from arcface.video import process_video

    fa = analyzer_from_args(args)
    contract = EmbeddingContract.from_analyzer(fa)
    gallery = Gallery(args.gallery, contract=contract, backend="numpy", create=False) if args.gallery else None
    exempt = Gallery(args.exempt, contract=contract, backend="numpy", create=False) if args.exempt else None
    summary = process_video(
        args.source,
        fa,
        gallery,
        out=args.out,
        events=args.events,
        blur=args.blur,
        exempt=exempt,
        detect_every=args.detect_every,
        max_seconds=args.max_seconds,
        threshold=fa.threshold.value if args.threshold is None else args.threshold,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print_json(summary)
    else:
        for e in summary["events"]:
            sim = "n/a" if e["similarity"] is None else f"{e['similarity']:.3f}"
            print(
                f"track {e['track']}: {e['identity']} (cosine {sim}, {e['faces_used']} faces) "
                f"{e['start_time']:.2f}-{e['end_time']:.2f} s, frames {e['start_frame']}-{e['end_frame']}"
            )
        src = summary["source"]
        print(
            f"{summary['frames']} frames, {summary['tracks']} tracks, {summary['fps']} frames/s"
            + (f", {src['corrupt']} corrupt frames skipped" if src["corrupt"] else "")
            + (f", {src['reconnects']} reconnections" if src["reconnects"] else ""),
            file=sys.stderr,
        )
    return 0
