"""Engines and precisions side by side on this CPU, against its matmul peak and insightface's own loop.

Everything is measured in one run, rounds interleaved (contenders alternate inside each round), medians with
(min-max); only ratios measured here are meaningful, not absolute times carried to another machine.

1. The CPU (flags from /proc/cpuinfo) and the engine ``--runtime auto`` picks here, with its reason.
2. Matmul peak: numpy f32 (its BLAS), OpenVINO f32 and (CPUs with bf16 units) bf16, ONNX Runtime int8
   (``MatMulInteger``), on a 1536^3 product.
3. Recognition at batch 32 (w600k_mbf) per engine: faces/s, GFLOP/s of its convolutions and matmuls
   (2 FLOPs per multiply-add, counted from the graph) and the fraction of that precision's measured peak.
4. End to end from a JPEG path (decode, detect at 640, align, embed) on the wheel's three photos (1, 5, 22 faces)
   per engine, the way the ``arcface`` command runs (one shared ONNX Runtime pool), and, with ``--peer
   insightface``, insightface's ``FaceAnalysis.get`` loop on the same model files at det_size 640, run in its
   own virtual environment (``--peer-python``, default /tmp/insvenv/bin/python; ``pip install insightface
   onnxruntime`` there) as a child process driven round by round: ratio = insightface time / ours. A last
   contender, ``models alone``, runs only the ``auto`` engine's two models on that photo's inputs prepared
   beforehand (every detector canvas, the crops in one batch): no pipeline around these models can be faster, so
   insightface / models alone is the ceiling of the end-to-end ratio on this CPU with these engines.

    python benchmarks/bench_engines.py [--rounds 7] [--peer insightface] [--peer-python PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from arcface import FaceAnalyzer
from arcface.embed.onnx import OnnxEmbedder
from arcface.models.packs import builtin_dir
from arcface.runtime import cpu_info, default_threads, openvino_available
from bench_folder import model_inputs, run_models, spread

PHOTOS = ("yaoming.jpg", "gdp.jpg", "players.jpg")

PEER = r"""
import os, sys, tempfile, time, warnings
warnings.filterwarnings("ignore")
import cv2
from insightface.app import FaceAnalysis
src = sys.argv[1]
d = tempfile.mkdtemp()
for f in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
    os.symlink(os.path.join(src, f), os.path.join(d, f))
app = FaceAnalysis(name=d, allowed_modules=["detection", "recognition"], providers=["CPUExecutionProvider"])
app.prepare(ctx_id=-1, det_size=(640, 640))
print("ready", flush=True)
for line in sys.stdin:
    path, reps = line.split()
    faces = app.get(cv2.imread(path))
    t = time.perf_counter()
    for _ in range(int(reps)):
        faces = app.get(cv2.imread(path))
    print((time.perf_counter() - t) / int(reps) * 1000, len(faces), flush=True)
"""


def engines_here() -> list[str]:
    from arcface.runtime.int8 import int8_available

    out = ["onnxruntime/f32"]
    if openvino_available():
        out.append("openvino/f32")
        if cpu_info().bf16:
            out.append("openvino/bf16")
    if int8_available():
        out.append("onnxruntime/int8")  # the recognizer quantized (int8 ops on VNNI where present), detector f32
    return out


def matmul_peaks(rounds: int, n: int = 1536) -> dict[str, list[float]]:
    """G(FL)OP/s of an n^3 product: numpy's BLAS in f32, OpenVINO's CPU plugin in f32 and bf16, ONNX Runtime's
    ``MatMulInteger`` in int8 (uint8 x int8 -> int32; where ``onnx`` is installed to build the graph)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    runners = {"numpy/f32": lambda: a @ b}
    if openvino_available():
        import openvino as ov
        import openvino.opset13 as ops

        param = ops.parameter([n, n], np.float32)
        model = ov.Model([ops.matmul(param, ops.constant(b), False, False)], [param])
        core = ov.Core()
        for pr in ("f32", "bf16") if cpu_info().bf16 else ("f32",):
            cfg = {"INFERENCE_PRECISION_HINT": pr, "INFERENCE_NUM_THREADS": default_threads()}
            req = core.compile_model(model, "CPU", cfg).create_infer_request()
            runners[f"openvino/{pr}"] = lambda req=req: req.infer({0: a})
    from arcface.runtime.int8 import int8_available

    if int8_available():  # ONNX Runtime's integer product (what int8 models run on; VNNI/AMX where present)
        from onnx import TensorProto, helper, numpy_helper

        from arcface.runtime.sessions import private_session

        qa = rng.integers(0, 256, (n, n), dtype=np.uint8)
        qb = numpy_helper.from_array(rng.integers(-128, 128, (n, n), dtype=np.int8), "b")
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
            "int8_peak",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
            [qb],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        sess = private_session(model.SerializeToString(), default_threads())
        runners["onnxruntime/int8"] = lambda: sess.run(None, {"a": qa})
    out: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        fn()
    for _ in range(rounds):
        for name, fn in runners.items():
            t = time.perf_counter()
            for _ in range(3):
                fn()
            out[name].append(2 * n**3 * 3 / (time.perf_counter() - t) / 1e9)
    return out


def model_gflop(path: Path) -> float | None:
    """GFLOP per face of the recognizer's convolutions and matmuls (2 per multiply-add), via OpenVINO's graph."""
    if not openvino_available():
        return None
    import openvino as ov

    model = ov.Core().read_model(str(path))
    model.reshape([1, 3, 112, 112])
    macs = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            w = list(op.input_value(1).get_shape())
            macs += int(np.prod(list(op.get_output_shape(0)))) * int(np.prod(w[1:] if kind == "Convolution" else w[2:]))
        elif kind == "MatMul":
            macs += int(np.prod(list(op.get_output_shape(0)))) * int(list(op.input_value(0).get_shape())[-1])
    return 2 * macs / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3, help="calls per sample (end to end)")
    ap.add_argument("--peer", choices=("insightface",), default=None)
    ap.add_argument("--peer-python", default="/tmp/insvenv/bin/python")
    ap.add_argument("--json", action="store_true", help="also print every median as one JSON object")
    args = ap.parse_args()
    model_dir = builtin_dir()
    cpu = cpu_info()
    report: dict = {"cpu": cpu.describe()}
    print(f"CPU: {cpu.describe()}")
    auto = FaceAnalyzer(runtime="auto", precision="auto")
    print(f"--runtime auto picks {auto.engine.engine}: {auto.engine.reason}")
    report["auto"] = auto.engine.to_dict()

    peaks = matmul_peaks(args.rounds)
    print("\nmatmul peak, 1536^3, GFLOP/s (int8: GOP/s):")
    for name, xs in peaks.items():
        print(f"  {name:<14} {spread(xs, '.1f')}")
    report["peak_gflops"] = {k: statistics.median(v) for k, v in peaks.items()}

    engines = engines_here()
    rec = model_dir / "w600k_mbf.onnx"
    gflop = model_gflop(rec)
    crops = np.stack([f.crop for f in auto.analyze(model_dir / "players.jpg", with_crops=True)])[:32]
    crops = np.concatenate([crops] * (32 // len(crops) + 1))[:32]
    embedders = {e: OnnxEmbedder(rec, runtime=e.split("/")[0], precision=e.split("/")[1]) for e in engines}
    rates: dict[str, list[float]] = {e: [] for e in engines}
    for emb in embedders.values():
        emb.embed(crops, batch_size=32)
    for r in range(args.rounds):
        for e in engines if r % 2 == 0 else engines[::-1]:
            t = time.perf_counter()
            embedders[e].embed(crops, batch_size=32)
            rates[e].append(32 / (time.perf_counter() - t))
    print(f"\nrecognition, batch 32 ({gflop:.3f} GFLOP/face):" if gflop else "\nrecognition, batch 32:")
    report["recognition_faces_per_s"] = {}
    for e in engines:
        line = f"  {e:<16} {spread(rates[e], '.1f')} faces/s"
        med = statistics.median(rates[e])
        report["recognition_faces_per_s"][e] = med
        if gflop:
            if e.endswith("int8"):  # int8 ops: no float peak to compare with
                print(line)
                continue
            peak_name = "openvino/bf16" if e.endswith("bf16") else "openvino/f32"
            peak = report["peak_gflops"].get(peak_name) or report["peak_gflops"]["numpy/f32"]
            line += f", {med * gflop:.0f} GFLOP/s = {med * gflop / peak:.0%} of the {peak_name} peak"
        print(line)

    print("\nend to end from a JPEG path, ms per photo, median (min-max):")
    analyzers = {e: FaceAnalyzer(runtime=e.split("/")[0], precision=e.split("/")[1]) for e in engines}
    analyzers["auto"] = auto  # what the CLI runs by default
    print(f"  auto: {auto.engine.engine}")
    peer = None
    if args.peer:
        peer = subprocess.Popen(
            [args.peer_python, "-c", PEER, str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert peer.stdout is not None and peer.stdin is not None
        if peer.stdout.readline().strip() != "ready":
            sys.exit("the insightface peer did not start (see its stderr above)")
    report["end_to_end_ms"] = {}
    for photo in PHOTOS:
        path = model_dir / photo
        times: dict[str, list[float]] = {e: [] for e in analyzers}
        if peer:
            times["insightface"] = []
        faces = {e: len(a.analyze(path)) for e, a in analyzers.items()}
        inputs = model_inputs(auto, [path])[:2]
        times["models alone"] = []
        for r in range(args.rounds):
            order = list(times) if r % 2 == 0 else list(times)[::-1]
            for who in order:
                if who == "insightface":
                    assert peer is not None and peer.stdin is not None and peer.stdout is not None
                    peer.stdin.write(f"{path} {args.repeats}\n")
                    peer.stdin.flush()
                    ms, n = peer.stdout.readline().split()
                    times[who].append(float(ms))
                    faces[who] = int(n)
                    continue
                if who == "models alone":
                    run_models(auto, *inputs)
                    t = time.perf_counter()
                    for _ in range(args.repeats):
                        run_models(auto, *inputs)
                    times[who].append((time.perf_counter() - t) / args.repeats * 1000)
                    continue
                analyzers[who].analyze(path)  # one untimed call first, as the peer does: the previous contender's
                t = time.perf_counter()  # thread pool may still be spinning on the cores
                for _ in range(args.repeats):
                    analyzers[who].analyze(path)
                times[who].append((time.perf_counter() - t) / args.repeats * 1000)
        print(f"  {photo} ({faces[engines[0]]} faces; " + ", ".join(f"{k} {v}" for k, v in faces.items()) + ")")
        report["end_to_end_ms"][photo] = {}
        for who, xs in times.items():
            line = f"    {who:<16} {spread(xs, '.1f')} ms"
            report["end_to_end_ms"][photo][who] = statistics.median(xs)
            if "insightface" in times and who != "insightface":
                ratio = [p / o for p, o in zip(times["insightface"], xs)]
                what = "ceiling, insightface / models alone" if who == "models alone" else "insightface / this"
                line += f"   {what}: {spread(ratio, unit='x')}"
            print(line)
    if peer:
        assert peer.stdin is not None
        peer.stdin.close()
        peer.wait(timeout=30)
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
