"""``arcface invert``: synthesise a face image from an embedding (BatchNorm-prior inversion)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from arcface.cli.common import print_json
from arcface.face import largest_face


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "invert",
        help="synthesise a face image from an embedding (needs arcface[train])",
        description="Synthesise an identity-preserving 112x112 face from an embedding: SOURCE is a photo (its largest "
        "face is embedded) or a .npy/.npz embedding (first row of 'embeddings' in an .npz from `arcface embed`).",
    )
    p.add_argument("source", type=Path, help="photo, .npy or .npz")
    p.add_argument("out", type=Path, help="output image (PNG recommended)")
    p.add_argument("--pack", default=None, help="model pack whose recognizer is inverted (default buffalo_sc)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam learning rate on the image (default 0.1)")
    p.add_argument("--bn-weight", type=float, default=1.0, help="weight of the BatchNorm prior (0 disables it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_invert)


def _target(source: Path, fa) -> np.ndarray:
    from arcface.errors import InputError, NoFaceError

    if source.suffix == ".npy":
        return np.load(source).reshape(-1)
    if source.suffix == ".npz":
        with np.load(source) as z:
            if "embeddings" not in z or len(z["embeddings"]) == 0:
                raise InputError(f"{source}: no 'embeddings' array (write one with `arcface embed --out`)")
            return z["embeddings"][0]
    faces = fa.analyze(source)
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    return largest_face(faces).embedding


def cmd_invert(args: argparse.Namespace) -> int:
    from arcface.errors import InputError
    from arcface.imageio import save_image
    from arcface.invert import invert
    from arcface.nn.convert import load_onnx_recognizer
    from arcface.pipeline import FaceAnalyzer

    fa = FaceAnalyzer(pack=args.pack)
    target = _target(args.source, fa)
    if target.shape != (fa.embedder.dim,):
        raise InputError(f"{args.source}: embedding has shape {target.shape}, the pack's is ({fa.embedder.dim},)")
    model = load_onnx_recognizer(fa.pack.recognizer)
    res = invert(
        target,
        model,
        spec=fa.pack.recognizer_spec,
        steps=args.steps,
        lr=args.lr,
        w_bn=args.bn_weight,
        seed=args.seed,
        progress=True,
    )
    save_image(args.out, res.image)
    deployed = float(fa.embed_crops(res.image[None])[0] @ (target / np.linalg.norm(target)))
    if args.json:
        print_json({"out": str(args.out), "cosine": res.cosine, "cosine_onnx": deployed, "steps": args.steps})
    else:
        print(f"wrote {args.out}: cosine to the target {deployed:.3f} (recognizer {fa.pack.recognizer.name})")
    return 0
