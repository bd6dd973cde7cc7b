"""How far each engine and precision stray from the reference (ONNX Runtime f32) on real labelled photos.

For every photo of the three labelled sets in ../shared/data (deepface's test set, face_recognition's examples,
the AT&T faces; the same photos ``calibrate_default.py`` calibrates the threshold on) the whole pipeline runs
under each engine (detector and recognizer alike). Per engine it prints:

- faces: photos whose largest face was found by both (a photo found by only one counts as changed);
- embedding cosine to the reference's embedding of the same photo (min, mean);
- decisions changed at the calibrated threshold over all within-set pairs (genuine and impostor), and how far
  from the threshold the changed pairs' reference scores lie.

``--write`` stores the records under ``"agreement"`` in the recognizer's entry of the package's thresholds file
(src/arcface/data/thresholds.json), beside the threshold's provenance: ``runtime="auto"`` then allows bf16 only
where its record passes the bars of ``arcface.runtime.choice.BARS``, and int8 likewise.

    python benchmarks/engine_agreement.py [--engines onnxruntime/int8] [--write] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arcface import FaceAnalyzer  # noqa: E402
from arcface.runtime import REFERENCE, agreement_allows, cpu_info, openvino_available  # noqa: E402
from arcface.runtime.int8 import int8_available  # noqa: E402
from calibrate_default import ROOT, labelled_sets  # noqa: E402


def largest_embeddings(fa: FaceAnalyzer, paths: list[Path]) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for faces in fa.analyze_many(paths, progress=True):
        out.append(max(faces, key=lambda f: f.area).embedding if faces else None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the records in the package's thresholds file")
    ap.add_argument("--json", action="store_true", help="print the records as one JSON object")
    ap.add_argument("--engines", default=None, help="comma-separated, e.g. onnxruntime/int8 (default: all available)")
    args = ap.parse_args()
    cpu = cpu_info()
    engines = []
    if openvino_available():
        engines.append("openvino/f32")
        if cpu.bf16:
            engines.append("openvino/bf16")
    if int8_available():
        engines.append("onnxruntime/int8")
    if args.engines:
        wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
        missing = [e for e in wanted if e not in engines]
        if missing:
            sys.exit(f"not available here: {', '.join(missing)} (available: {', '.join(engines) or 'none'})")
        engines = wanted
    if not engines:
        sys.exit("nothing to compare: install the openvino extra or onnx (int8)")
    sets = labelled_sets()
    ref_fa = FaceAnalyzer(runtime="onnxruntime", precision="f32")
    threshold = ref_fa.threshold.value
    ref = {name: largest_embeddings(ref_fa, [p for p, _ in items]) for name, items in sets.items()}
    records = {}
    for engine in engines:
        rt, pr = engine.split("/")
        fa = FaceAnalyzer(runtime=rt, precision=pr)
        cos, changed, pairs, margins, lost = [], 0, 0, [], 0
        for name, items in sets.items():
            mine = largest_embeddings(fa, [p for p, _ in items])
            both = np.array([a is not None and b is not None for a, b in zip(ref[name], mine)])
            lost += int(sum((a is None) != (b is None) for a, b in zip(ref[name], mine)))
            ea = np.stack([a for a, k in zip(ref[name], both) if k])
            eb = np.stack([b for b, k in zip(mine, both) if k])
            cos.append(np.sum(ea * eb, axis=1))
            iu = np.triu_indices(len(ea), 1)
            sa, sb = (ea @ ea.T)[iu], (eb @ eb.T)[iu]
            differ = (sa >= threshold) != (sb >= threshold)
            changed += int(differ.sum())
            pairs += len(sa)
            margins.extend(np.abs(sa[differ] - threshold).tolist())
        c = np.concatenate(cos)
        record = {
            "cosine_min": round(float(c.min()), 6),
            "cosine_mean": round(float(c.mean()), 6),
            "decisions_changed": changed,
            "pairs": pairs,
            "faces": int(len(c)),
            "photos_changed": lost,
            "max_margin_of_changed": round(max(margins), 5) if margins else 0.0,
            "cpu": cpu.describe(),
            "provenance": f"all within-set pairs of ../shared/data's labelled photos, whole pipeline, against "
            f"{REFERENCE}, {dt.date.today().isoformat()}, benchmarks/engine_agreement.py",
        }
        ok, why = agreement_allows(record, pr)
        records[engine] = record
        print(
            f"{engine}: {record['faces']} faces, cosine min {record['cosine_min']:.6f} mean {record['cosine_mean']:.6f}"
            f"; {changed} of {pairs} decisions changed at {threshold} ({changed / pairs:.4%})"
            + (f", all within {record['max_margin_of_changed']} of it" if changed else "")
            + f"; photos whose face was found by one only: {lost}; "
            f"auto may choose it: {'yes' if ok else 'no'} ({why})"
        )
    if args.json:
        print(json.dumps(records, indent=1))
    if args.write:
        path = ROOT / "src" / "arcface" / "data" / "thresholds.json"
        table = json.loads(path.read_text())
        entry = table["recognizers"][ref_fa.pack.recognizer_sha256]
        entry.setdefault("agreement", {}).update(records)
        path.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
