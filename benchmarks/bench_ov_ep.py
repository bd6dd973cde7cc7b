"""OpenVINO reached through ONNX Runtime's OpenVINO execution provider, against OpenVINO used directly (what
``--runtime openvino`` does) and ONNX Runtime's own CPU provider, on the default pack's two models.

The execution provider ships as the ``onnxruntime-openvino`` wheel, which replaces ``onnxruntime`` (same module
name) and bundles its own OpenVINO, so it lives in a venv of its own, passed as ``--ovep-python``:

    python3 -m venv /tmp/ortov && /tmp/ortov/bin/pip install onnxruntime-openvino numpy
    python benchmarks/bench_ov_ep.py --ovep-python /tmp/ortov/bin/python [--rounds 5]

Each contender runs in its own process (the providers cannot share one), the processes alternating round by
round; each times, after warm-up runs, the detector on one 640x640 canvas and the recognizer on batches of 1 and
32 crops (random inputs), and reports medians. Printed: milliseconds per call, median over the rounds (min-max),
and each contender's speed against OpenVINO used directly at the same precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import numpy as np
kind, precision, det_path, rec_path, reps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
threads = 2
if kind == "openvino":
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    def load(path, shape):
        m = core.read_model(path)
        if shape:
            m.reshape(shape)
        c = core.compile_model(m, "CPU", cfg)
        req = c.create_infer_request()
        return lambda x: req.infer({0: x})
else:
    import onnxruntime as ort
    def load(path, shape):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if kind == "ovep":
            cfg = {"CPU": {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}}
            prov = [("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": str(threads),
                                                    "load_config": json.dumps(cfg)})]
        else:
            prov = ["CPUExecutionProvider"]
        s = ort.InferenceSession(path, sess_options=opts, providers=prov)
        assert s.get_providers()[0] == (prov[0][0] if kind == "ovep" else prov[0]), s.get_providers()
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})
rng = np.random.default_rng(0)
work = {
    "detector 640x640": (load(det_path, [1, 3, 640, 640]), rng.uniform(-1, 1, (1, 3, 640, 640)).astype(np.float32)),
    "recognizer batch 1": (load(rec_path, None), rng.uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)),
    "recognizer batch 32": (None, rng.uniform(-1, 1, (32, 3, 112, 112)).astype(np.float32)),
}
work["recognizer batch 32"] = (work["recognizer batch 1"][0], work["recognizer batch 32"][1])
out = {}
for name, (fn, x) in work.items():
    for _ in range(3):
        fn(x)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(x); t.append(time.perf_counter() - t0)
    out[name] = statistics.median(t) * 1e3
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    from arcface.models.packs import builtin_dir
    from arcface.runtime import cpu_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ovep-python", required=True, help="python of a venv with onnxruntime-openvino installed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    det, rec = str(builtin_dir() / "scrfd_500m_bnkps.onnx"), str(builtin_dir() / "w600k_mbf.onnx")
    precisions = ["f32", "bf16"] if cpu_info().bf16 else ["f32"]
    contenders = [(sys.executable, "onnxruntime", "f32")]
    for pr in precisions:
        contenders += [(sys.executable, "openvino", pr), (args.ovep_python, "ovep", pr)]
    res: dict[tuple[str, str], list[dict[str, float]]] = {(k, p): [] for _, k, p in contenders}
    for r in range(args.rounds):
        for py, kind, pr in contenders[:: 1 if r % 2 == 0 else -1]:
            out = subprocess.run(
                [py, "-c", CHILD, kind, pr, det, rec, str(args.reps)], capture_output=True, text=True, check=False
            )
            if out.returncode:
                raise SystemExit(f"{kind}/{pr}: {out.stderr[-2000:]}")
            res[(kind, pr)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    versions = subprocess.run(
        [args.ovep_python, "-c", "import onnxruntime as o; print(o.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    print(f"CPU: {cpu_info().describe()}; onnxruntime-openvino {versions}; {args.rounds} rounds, 2 threads")
    names = {"onnxruntime": "ONNX Runtime CPU", "openvino": "OpenVINO direct", "ovep": "ONNX Runtime + OpenVINO EP"}
    work = list(res[("onnxruntime", "f32")][0])
    print("| contender | " + " | ".join(f"{w} ms" for w in work) + " |")
    print("|---|" + "---|" * len(work))
    for (kind, pr), runs in res.items():
        cells = []
        for w in work:
            v = [r[w] for r in runs]
            cell = f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
            if kind == "ovep":
                direct = statistics.median(r[w] for r in res[("openvino", pr)])
                cell += f", {direct / statistics.median(v):.2f}x direct"
            cells.append(cell)
        print(f"| {names[kind]} {pr} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
