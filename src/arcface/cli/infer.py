"""``arcface verify``, ``arcface embed`` and ``arcface detect``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from arcface.cli.common import (
    add_batch_options,
    add_pack_options,
    add_select_option,
    analyzer_from_args,
    image_files,
    print_json,
    report_failures,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="are two photos the same person? (exit 0 same, 1 not same / no face)")
    p.add_argument("image_a", nargs="?", help="first photo (JPEG, PNG, WebP, BMP)")
    p.add_argument("image_b", nargs="?", help="second photo")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the pack's calibrated)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument(
        "--pairs",
        type=Path,
        default=None,
        metavar="PAIRS.csv",
        help="score many pairs: a CSV of path_a,path_b[,same] (header optional); one model load, batched",
    )
    p.add_argument("--root", type=Path, default=None, help="folder relative paths in --pairs are taken from")
    p.add_argument("--out", type=Path, default=None, help="with --pairs: write the results to FILE.csv or FILE.json")
    add_select_option(p)
    add_batch_options(p)
    add_pack_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("embed", help="512-d embeddings of the faces in photos or folders")
    p.add_argument("paths", nargs="+", help="image files or folders (recursed)")
    p.add_argument("--all-faces", action="store_true", help="embed every face, not only the one --select picks")
    add_select_option(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (embeddings as lists)")
    out.add_argument(
        "--out",
        type=Path,
        help="write the embeddings to FILE.npz (with paths, boxes, scores, landmarks, errors), .npy (embeddings "
        "only), .csv (one row per face) or .parquet (needs pyarrow)",
    )
    add_batch_options(p)
    add_pack_options(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("detect", help="find faces and their 5 landmarks")
    p.add_argument("image", help="photo")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--draw", type=Path, help="write a copy of the photo with boxes and landmarks")
    add_pack_options(p)
    p.set_defaults(func=cmd_detect)


def _verify_pairs(args: argparse.Namespace) -> int:
    from arcface.eval.calibration import read_pairs_csv
    from arcface.face import select_face
    from arcface.thresholds import check_threshold

    listed = read_pairs_csv(args.pairs, args.root, labels=False)
    flags = [None] * len(listed.a) if listed.same is None else [bool(v) for v in listed.same]
    pairs = list(zip(listed.a, listed.b, flags, strict=True))
    files = sorted({p for a, b, _ in pairs for p in (a, b)}, key=str)
    fa = analyzer_from_args(args, photos=len(files))
    per_image = fa.analyze_many(files, on_error="skip", progress=len(files) > 20 and sys.stderr.isatty())
    failures = [e.to_dict() for e in per_image.errors]
    early = report_failures(failures, args.strict, len(files) - len(failures))
    if early is not None:
        return early
    faces = {str(f): fs for f, fs in zip(files, per_image, strict=True)}
    errors = {e["source"]: e["error"] for e in failures}
    t = fa.threshold.value if args.threshold is None else check_threshold(args.threshold)
    rows = []
    for a, b, label in pairs:
        fa_, fb_ = faces[str(a)], faces[str(b)]
        row: dict[str, Any] = {"path_a": str(a), "path_b": str(b), "similarity": None, "same": None}
        if fa_ and fb_:
            sim = float(select_face(fa_, args.select).embedding @ select_face(fb_, args.select).embedding)
            row.update(similarity=round(sim, 6), same=sim >= t)
        else:
            missing = a if not fa_ else b
            row["error"] = errors.get(str(missing), f"no face found in {missing}")
        if label is not None:
            row["label"] = label
        rows.append(row)
    scored = [r for r in rows if r["same"] is not None]
    summary: dict[str, Any] = {
        "pairs": len(rows),
        "scored": len(scored),
        "threshold": t,
        "threshold_provenance": fa.threshold.provenance if args.threshold is None else "given by the caller",
    }
    labelled = [r for r in scored if "label" in r]
    if labelled:
        summary["accuracy"] = sum(r["same"] == r["label"] for r in labelled) / len(labelled)
    if args.out is not None:
        _write_rows(args.out, rows, summary)
    if args.json:
        print_json({**summary, "results": rows})
    else:
        if args.out is None:
            for r in rows:
                sim = "n/a" if r["similarity"] is None else f"{r['similarity']:.4f}"
                verdict = {True: "SAME", False: "DIFFERENT", None: r.get("error", "")}[r["same"]]
                print(f"{r['path_a']}\t{r['path_b']}\t{sim}\t{verdict}")
        acc = f", accuracy {summary['accuracy']:.4f} on {len(labelled)} labelled" if labelled else ""
        print(f"{len(scored)}/{len(rows)} pairs scored at threshold {t:.4f}{acc}", file=sys.stderr)
    return 0


def _write_rows(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    import csv
    import io

    from arcface.errors import InputError
    from arcface.io_utils import atomic_write_text

    if out.suffix.lower() == ".json":
        atomic_write_text(out, json.dumps({**summary, "results": rows}, indent=2) + "\n")
    elif out.suffix.lower() == ".csv":
        buf = io.StringIO()
        cols = ["path_a", "path_b", "similarity", "same", "label", "error"]
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(out, buf.getvalue())
    else:
        raise InputError(f"--out {out}: give a name ending in .csv or .json")


def cmd_verify(args: argparse.Namespace) -> int:
    from arcface.errors import InputError, NoFaceError

    if args.pairs is not None:
        if args.image_a or args.image_b:
            raise InputError("give either two photos or --pairs PAIRS.csv, not both")
        return _verify_pairs(args)
    if not (args.image_a and args.image_b):
        raise InputError("give two photos (arcface verify A.jpg B.jpg) or --pairs PAIRS.csv")
    if args.out is not None:
        raise InputError("--out goes with --pairs")
    fa = analyzer_from_args(args, photos=2)
    try:
        res = fa.verify(args.image_a, args.image_b, threshold=args.threshold, select=args.select)
    except NoFaceError as exc:
        if not args.json:
            raise
        print_json({"error": str(exc), "code": "no_face", "image": exc.image})
        return 1
    if args.json:
        d = res.to_dict()
        d["pack"] = fa.pack.name
        print_json(d)
    else:
        verdict = "SAME person" if res.same else "DIFFERENT people"
        print(f"{verdict}: cosine similarity {res.similarity:.4f} (threshold {res.threshold:.4f})")
        for note in res.notes:
            print(f"note: {note}")
    return 0 if res.same else 1


def cmd_embed(args: argparse.Namespace) -> int:
    from arcface.face import face_index, select_face

    if args.out is not None:
        from arcface.embeddings_io import check_output

        check_output(args.out)
    files = image_files(args.paths)
    fa = analyzer_from_args(args, photos=len(files))
    faces_per_image = fa.analyze_many(files, progress=sys.stderr.isatty() or len(files) > 20, on_error="skip")
    errors = [e.to_dict() for e in faces_per_image.errors]
    early = report_failures(errors, args.strict, len(files) - len(errors))
    if early is not None:
        return early
    rows = []
    for k, (path, faces) in enumerate(zip(files, faces_per_image)):
        if not faces and k not in faces_per_image.failed:
            print(f"arcface: no face in {path}", file=sys.stderr)
        chosen = faces if args.all_faces else ([select_face(faces, args.select)] if faces else [])
        for f in chosen:
            rows.append((str(path), face_index(faces, f), f))
    if args.out:
        from arcface.embeddings_io import write_embeddings

        write_embeddings(args.out, rows, fa.embedder.dim, fa.pack.recognizer_sha256, errors)
        print(f"wrote {len(rows)} embeddings from {len(files)} images to {args.out}", file=sys.stderr)
    elif args.json:
        print_json(
            {
                "pack": fa.pack.name,
                "dim": fa.embedder.dim,
                "faces": [
                    {
                        "path": p,
                        "face": i,
                        **f.to_dict(),
                        "embedding": [round(float(v), 6) for v in f.embedding],
                    }
                    for p, i, f in rows
                ],
                "errors": errors,
            }
        )
    else:
        for p, i, f in rows:
            print(f"{p}\tface {i}\tscore {f.score:.3f}\tembedding[:4] {np.round(f.embedding[:4], 4).tolist()}")
    return 0 if rows else 1


def cmd_detect(args: argparse.Namespace) -> int:
    from arcface.draw import draw_faces
    from arcface.errors import InputError
    from arcface.imageio import IMAGE_EXTENSIONS, load_image, save_image

    if args.draw is not None and args.draw.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"--draw {args.draw}: unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}")
    fa = analyzer_from_args(args, photos=1)
    image = load_image(args.image)
    faces = fa.analyze(image, embed=False)
    if args.draw:
        save_image(args.draw, draw_faces(image, faces))
    if args.json:
        print_json(
            {
                "image": args.image,
                "size": [image.shape[1], image.shape[0]],
                "faces": [f.to_dict() for f in faces],
            }
        )
    else:
        print(f"{len(faces)} face(s) in {args.image}")
        for i, f in enumerate(faces):
            x1, y1, x2, y2 = f.bbox
            print(f"  face {i}: box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) score {f.score:.3f}")
    return 0 if faces else 1
