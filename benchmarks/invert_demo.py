"""Face inversion on the default pack: embed a real face, synthesise an image from the embedding, re-embed it.

Prints, for the BatchNorm prior on and off, the identity cosine under the torch model that was inverted and under
the original ONNX recognizer (the deployed model, from the uint8 image), the cosine to other people's faces, and
the BN-statistics distance; writes a PNG strip (original crop | with prior | without prior).

    python benchmarks/invert_demo.py [--steps 300] [--out inversion.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from arcface import FaceAnalyzer
from arcface.imageio import load_image, save_image
from arcface.invert import bn_prior, invert
from arcface.models.packs import builtin_dir
from arcface.nn.convert import load_onnx_recognizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--w-bn", type=float, default=1.0)
    ap.add_argument("--w-tv", type=float, default=0.2)
    ap.add_argument("--out", default="inversion.png")
    args = ap.parse_args()
    fa = FaceAnalyzer()
    target = fa.analyze(load_image(builtin_dir() / "yaoming.jpg"), with_crops=True)[0]
    others = [f.embedding for f in fa.analyze(load_image(builtin_dir() / "gdp.jpg"))]
    model = load_onnx_recognizer(fa.pack.recognizer)
    prior = bn_prior(model)
    strip = [target.crop]
    for w_bn in (args.w_bn, 0.0):
        t = time.perf_counter()
        r = invert(target.embedding, model, steps=args.steps, lr=args.lr, w_bn=w_bn, w_tv=args.w_tv, prior=prior)
        e = fa.embed_crops(r.image[None])[0]
        other = max(float(e @ o) for o in others)
        print(
            f"w_bn={w_bn:<5} steps={args.steps} {time.perf_counter() - t:6.1f}s  torch cos {r.cosine:.3f}  "
            f"ONNX cos {float(e @ target.embedding):.3f}  best cos to other people {other:.3f}  "
            f"BN distance at end {r.history[-1][2]:.3f}"
        )
        strip.append(r.image)
    save_image(args.out, np.concatenate(strip, axis=1))
    print(f"wrote {args.out} (original crop | with BN prior | without)")


if __name__ == "__main__":
    main()
