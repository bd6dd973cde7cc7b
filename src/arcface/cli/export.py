"""``arcface export onnx|quantize``: deployable ONNX recognizers with ``config.json``, and int8 versions."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a backbone to ONNX, OpenVINO IR or a DepthAI NN Archive (parity-checked), or quantize to int8",
        description="Deployment tools: 'export onnx' writes a recognizer .onnx plus config.json after checking "
        "it against torch; 'export quantize' makes an int8 version and reports what it costs in accuracy.",
    )
    ex = p.add_subparsers(dest="export_command", metavar="WHAT")
    ex.required = True

    o = ex.add_parser(
        "onnx",
        help="export a checkpoint, state dict, ONNX recognizer or pack to ONNX (needs arcface[train])",
        description="Export a recognition backbone to ONNX: input 'input' float32 (N, 3, 112, 112) NCHW RGB "
        "(pixel - 127.5) / 127.5, output 'embedding' (N, D). The export is checked against torch with "
        "ONNX Runtime on real aligned faces at batch 1 and 7 (min cosine >= 0.9999) and config.json "
        "(+ <stem>.json) is written beside it. SOURCE is a training checkpoint (run folder, step folder or "
        "rank0.pt), an arcface_torch backbone.pth (with --arch), an .onnx recognizer or a pack name "
        "(e.g. buffalo_sc: re-exports its recognizer through the torch importer).",
    )
    o.add_argument("source", metavar="CHECKPOINT_OR_ONNX", help="checkpoint, state dict, .onnx file or pack name")
    o.add_argument("out", metavar="OUT.onnx", help="ONNX file to write")
    o.add_argument("--arch", default=None, help="backbone name (required for bare state dicts), e.g. iresnet50")
    o.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    o.add_argument("--no-dynamic-batch", action="store_true", help="fix the batch axis to 1")
    o.add_argument(
        "--with-detector",
        nargs="?",
        const="default",
        default=None,
        metavar="DET.onnx",
        help="copy a detector (default: the default pack's) beside the export and write pack.json",
    )
    o.add_argument(
        "--input",
        dest="input_format",
        choices=("float", "bgr-uint8", "rgb-uint8"),
        default="float",
        help="graph input: float (normalised float32 RGB, the default) or raw uint8 pixels in BGR or RGB order "
        "with the normalisation baked into the graph (DepthAI: bgr-uint8)",
    )
    o.add_argument("--min-cosine", type=float, default=0.9999, help="parity threshold (default 0.9999)")

    for fmt, what, out_help, default_input in (
        ("openvino", "OpenVINO IR (model.xml/.bin) checked against ONNX Runtime at f32", "OUT_DIR", "float"),
        (
            "nnarchive",
            "Luxonis NN Archive (.tar.xz: config.json + ONNX, batch 1) for DepthAI",
            "OUT.tar.xz",
            "bgr-uint8",
        ),
    ):
        e = ex.add_parser(fmt, help=f"export to {what} (needs arcface[train]; openvino: arcface[openvino])")
        e.add_argument("source", metavar="SOURCE", help="checkpoint, state dict, .onnx file or pack name")
        e.add_argument("out", metavar=out_help)
        e.add_argument("--arch", default=None, help="backbone name (required for bare state dicts)")
        e.add_argument(
            "--input",
            dest="input_format",
            choices=("float", "bgr-uint8", "rgb-uint8"),
            default=default_input,
            help=f"graph input (default {default_input}; see 'arcface export onnx --help')",
        )
        e.add_argument("--min-cosine", type=float, default=0.9999, help="parity threshold (default 0.9999)")
        e.add_argument("--json", action="store_true", help="print the result as JSON")
        if fmt == "nnarchive":
            e.add_argument(
                "--detector",
                action="store_true",
                help="archive the SOURCE pack's SCRFD detector instead (input fixed to --det-size, outputs described)",
            )
            e.add_argument(
                "--det-size", type=int, default=640, help="detector input side with --detector (default 640)"
            )
        e.set_defaults(func=cmd_export_edge, edge_format=fmt)
    o.add_argument("--json", action="store_true", help="print the result as JSON")
    o.set_defaults(func=cmd_export_onnx)

    q = ex.add_parser(
        "quantize",
        help="int8-quantize an ONNX recognizer and measure the accuracy change",
        description="Quantize an fp32 ONNX recognizer to int8 with ONNX Runtime (static QDQ calibrated on "
        "aligned faces, or dynamic), write <stem>.json beside it, then compare it with the fp32 model: "
        "embedding cosine, verification accuracy on labelled pairs (with --eval-data) and "
        "faces/s at batch 32.",
    )
    q.add_argument("input", metavar="IN.onnx", help="fp32 ONNX recognizer")
    q.add_argument("out", metavar="OUT.onnx", help="int8 ONNX file to write")
    q.add_argument("--calib", default=None, metavar="DIR", help="calibration photos or 112x112 aligned crops")
    q.add_argument("--method", choices=("static", "dynamic"), default="static", help="default static")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor (default per channel)")
    q.add_argument(
        "--quantize-all",
        action="store_true",
        help="static: also quantize the first and the depthwise convolutions (kept float by default)",
    )
    q.add_argument("--n-calib", type=int, default=64, help="at most this many calibration faces (default 64)")
    q.add_argument(
        "--eval-data",
        default=None,
        metavar="DIR",
        help="folder laid out like ../shared/data (deepface_pairs.csv, deepface_labels.csv, deepface_by_identity/)",
    )
    q.add_argument("--no-eval", action="store_true", help="skip the accuracy/speed comparison")
    q.add_argument("--seconds", type=float, default=3.0, help="timing per model in the speed test (default 3)")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(func=cmd_export_quantize)


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from arcface.cli.common import print_json
    from arcface.errors import require

    require("torch", "train")
    from arcface.export.onnx import export_onnx

    detector = args.with_detector
    if detector == "default":
        from arcface.models.packs import load_pack

        detector = load_pack().detector
    res = export_onnx(
        args.source,
        args.out,
        arch=args.arch,
        opset=args.opset,
        dynamic_batch=not args.no_dynamic_batch,
        min_cosine=args.min_cosine,
        detector=detector,
        input_format=args.input_format,
    )
    if args.json:
        print_json(res.to_dict())
        return 0
    crops = "real aligned faces" if res.real_crops else "random pixels (no face photos found)"
    print(f"wrote {res.path} ({res.arch}, sha256 {res.sha256[:16]}...)")
    print(f"config: {res.config_path}")
    for b, c in res.parity.items():
        print(f"parity torch vs onnxruntime, batch {b}: min cosine {c:.7f} ({crops})")
    for b, c in res.source_parity.items():
        print(f"round trip vs source onnx, batch {b}: min cosine {c:.7f}")
    if res.pack_json:
        print(f"pack: {res.pack_json} (use --pack {res.path.parent})")
    if res.threshold:
        t = res.threshold
        print(f"threshold: cosine {t['threshold']:.4f} in {res.path.with_name('thresholds.json')} ({t['provenance']})")
    return 0


def cmd_export_edge(args: argparse.Namespace) -> int:
    from arcface.cli.common import print_json
    from arcface.errors import require

    require("torch", "train")
    from arcface.export import edge

    if getattr(args, "detector", False):
        res = edge.export_detector_nnarchive(args.source, args.out, input_size=args.det_size)
    else:
        fn = edge.export_openvino if args.edge_format == "openvino" else edge.export_nnarchive
        res = fn(args.source, args.out, arch=args.arch, input_format=args.input_format, min_cosine=args.min_cosine)
    if args.json:
        print_json(res.to_dict())
        return 0
    print(f"wrote {res.path} (input {res.spec.input_dtype} {res.spec.color_order} NCHW)")
    for b, c in res.parity.items():
        print(f"parity, batch {b}: min cosine {c:.7f}")
    if res.max_difference is not None:
        print(f"outputs equal the original detector's to {res.max_difference:.2e} (largest difference)")
    return 0


def cmd_export_quantize(args: argparse.Namespace) -> int:
    from arcface.cli.common import print_json
    from arcface.errors import InputError
    from arcface.export.quantize import quantize_onnx

    if args.n_calib < 1:
        raise InputError(f"--n-calib must be >= 1, got {args.n_calib}")
    res = quantize_onnx(
        args.input,
        args.out,
        calib=args.calib,
        method=args.method,
        per_channel=not args.per_tensor,
        n_calib=args.n_calib,
        keep_sensitive=not args.quantize_all,
    )
    report = None
    if not args.no_eval:
        from pathlib import Path

        from arcface.export.compare import compare_recognizers, format_report

        data = Path(args.eval_data) if args.eval_data else None
        if data is not None and not (data / "deepface_pairs.csv").is_file():
            raise InputError(f"{data}: no deepface_pairs.csv there")
        report = compare_recognizers(args.input, res.path, data, seconds=args.seconds)
    if args.json:
        print_json({"quantized": res.to_dict(), "comparison": report})
        return 0
    d = res.to_dict()
    print(
        f"wrote {res.path} ({res.method}, {res.n_calib} calibration faces, "
        f"{d['size_fp32_mb']:.1f} MB -> {d['size_int8_mb']:.1f} MB)"
    )
    if report is not None:
        print(format_report(report))
    sys.stdout.flush()
    return 0
