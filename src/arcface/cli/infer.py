"""``arcface verify``, ``arcface embed`` and ``arcface detect``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from arcface.cli.common import (
    add_batch_options,
    add_pack_options,
    analyzer_from_args,
    print_json,
    report_failures,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="are two photos the same person? (exit 0 same, 1 not same / no face)")
    p.add_argument("image_a", help="first photo (JPEG, PNG, WebP, BMP)")
    p.add_argument("image_b", help="second photo")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the pack's calibrated)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    add_pack_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("embed", help="512-d embeddings of the faces in photos or folders")
    p.add_argument("paths", nargs="+", help="image files or folders (recursed)")
    p.add_argument("--all-faces", action="store_true", help="embed every face, not only the largest per photo")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (embeddings as lists)")
    out.add_argument("--out", type=Path, help="write an .npz: embeddings (N, D), paths, bboxes, scores, kps, errors")
    add_batch_options(p)
    add_pack_options(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("detect", help="find faces and their 5 landmarks")
    p.add_argument("image", help="photo")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--draw", type=Path, help="write a copy of the photo with boxes and landmarks")
    add_pack_options(p)
    p.set_defaults(func=cmd_detect)


def cmd_verify(args: argparse.Namespace) -> int:
    from arcface.errors import NoFaceError

    fa = analyzer_from_args(args)
    try:
        res = fa.verify(args.image_a, args.image_b, threshold=args.threshold)
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
    from arcface.errors import InputError
    from arcface.face import face_index, largest_face
    from arcface.imageio import iter_image_files

    if args.out is not None and args.out.is_dir():
        raise InputError(f"--out {args.out}: is a directory; give a file name ending in .npz")
    if args.out is not None and args.out.suffix.lower() != ".npz":
        raise InputError(f"--out {args.out}: the output is an .npz archive; give a name ending in .npz")
    files = iter_image_files(args.paths)
    if not files:
        raise InputError(f"no image files under {' '.join(args.paths)}")
    fa = analyzer_from_args(args)
    faces_per_image = fa.analyze_many(files, progress=sys.stderr.isatty() or len(files) > 20, on_error="skip")
    errors = [e.to_dict() for e in faces_per_image.errors]
    early = report_failures(errors, args.strict, len(files) - len(errors))
    if early is not None:
        return early
    rows = []
    for k, (path, faces) in enumerate(zip(files, faces_per_image)):
        if not faces and k not in faces_per_image.failed:
            print(f"arcface: no face in {path}", file=sys.stderr)
        chosen = faces if args.all_faces else ([largest_face(faces)] if faces else [])
        for f in chosen:
            rows.append((str(path), face_index(faces, f), f))
    if args.out:
        from arcface.io_utils import atomic_savez

        atomic_savez(
            args.out,
            embeddings=np.stack([f.embedding for _, _, f in rows])
            if rows
            else np.zeros((0, fa.embedder.dim), np.float32),
            paths=np.array([p for p, _, _ in rows]),
            face_index=np.array([i for _, i, _ in rows], np.int64),
            bboxes=np.array([f.bbox for _, _, f in rows], np.float32).reshape(-1, 4),
            scores=np.array([f.score for _, _, f in rows], np.float32),
            kps=np.array([f.kps for _, _, f in rows], np.float32).reshape(-1, 5, 2),
            recognizer_sha256=np.array(fa.pack.recognizer_sha256),
            error_paths=np.array([e["source"] for e in errors], dtype=str),
            error_messages=np.array([e["error"] for e in errors], dtype=str),
        )
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
    fa = analyzer_from_args(args)
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
