"""``arcface eval {bin,lfw,ijb,megaface,ytf}`` and ``arcface calibrate``.

Each ``--model`` is a pack name, a pack directory, an ``.onnx`` recognizer or a ``.pt``/``.pth``
checkpoint (default: the default pack); several ``--model`` options evaluate several models and draw
them on one ``--plot``. Progress bars go to stderr; results go to stdout as a Markdown table or, with
``--json``, as JSON (one result: the result object itself; several: ``{"results": [...]}``).
Thresholds are cosine similarities (accept ``score >= threshold``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcface.cli.common import add_batch_options, add_select_option
from arcface.errors import InputError


@dataclass
class _Model:
    label: str
    embedder: Any
    detector: Any | None
    sha256: str | None


def _load_model(spec: str | None, need_detector: bool, engine: tuple[str, str] = ("onnxruntime", "f32")) -> _Model:
    from arcface.eval.models import model_digest, model_label, resolve_analyzer, resolve_embedder
    from arcface.models import parse_model

    is_file = spec is not None and parse_model(spec).kind != "pack"
    if is_file:
        if engine != ("onnxruntime", "f32"):
            raise InputError("--runtime/--precision apply to packs; a single model file runs on ONNX Runtime f32")
        embedder = resolve_embedder(spec)
        detector = resolve_analyzer(None).detector if need_detector else None
        return _Model(model_label(spec), embedder, detector, model_digest(spec))
    analyzer = resolve_analyzer(spec, *engine)
    pack = getattr(analyzer, "pack", None)
    label = getattr(pack, "name", None) or model_label(spec)
    return _Model(label, analyzer.embedder, analyzer.detector, getattr(pack, "recognizer_sha256", None) or None)


def _fars(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated FARs such as 1e-4,1e-3, got {text!r}") from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError("FARs must lie in (0, 1]")
    return vals


def _common(p: argparse.ArgumentParser, default_fars: str = "1e-4,1e-3,1e-2,1e-1") -> None:
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="PACK_OR_CHECKPOINT",
        help="pack name/dir, .onnx or .pt/.pth (repeatable; default: the default pack)",
    )
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--output", metavar="FILE.json", help="also write the JSON results to this file")
    p.add_argument("--plot", metavar="ROC.png", help="save a ROC plot (log-FAR axis) of all models")
    p.add_argument("--batch-size", type=int, default=64, help="embedding batch size (default 64)")
    p.add_argument("--no-flip", action="store_true", help="disable flip test-time augmentation")
    p.add_argument("--far", type=_fars, default=_fars(default_fars), help=f"FAR targets (default {default_fars})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_batch_options(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "eval", help="benchmark recognition models (LFW/CFP/AgeDB .bin, LFW, IJB, MegaFace, YTF)"
    )
    sub = ev.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    sub.required = True

    b = sub.add_parser("bin", help="insightface .bin verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin, ...)")
    b.add_argument("files", nargs="+", metavar="FILE.bin")
    b.add_argument("--folds", type=int, default=10, help="k of the k-fold accuracy (default 10)")
    _common(b)
    b.set_defaults(func=_run_bin)

    lf = sub.add_parser("lfw", help="LFW from image folders + pairs.txt (detection + alignment)")
    lf.add_argument("root", help="folder holding <name>/<name>_NNNN.jpg")
    lf.add_argument("--pairs", required=True, help="pairs.txt or pairsDevTest.txt")
    add_select_option(lf, default="center")
    _common(lf)
    lf.set_defaults(func=_run_lfw)

    ij = sub.add_parser("ijb", help="IJB-B/C 1:1 TAR@FAR (template pooling) and 1:N identification")
    ij.add_argument("root", help="folder holding meta/ and loose_crop/")
    ij.add_argument("--target", default="IJBC", choices=["IJBB", "IJBC"])
    ij.add_argument("--detector-score", action="store_true", help="weight faces by their detection score")
    ij.add_argument("--no-1n", action="store_true", help="skip 1:N identification")
    _common(ij, "1e-6,1e-5,1e-4,1e-3,1e-2,1e-1")
    ij.set_defaults(func=_run_ijb)

    mf = sub.add_parser("megaface", help="rank-1 identification against 10..10^6 distractors")
    mf.add_argument("--probes", required=True, help="folder <identity>/<images> (e.g. FaceScrub)")
    mf.add_argument("--distractors", required=True, help="folder of distractor images (recursive, sorted)")
    mf.add_argument("--aligned", action="store_true", help="images are aligned crops: skip detection")
    mf.add_argument("--sizes", default="10,100,1000,10000,100000,1000000", help="distractor counts")
    _common(mf)
    mf.set_defaults(func=_run_megaface)

    yt = sub.add_parser("ytf", help="YouTube Faces video verification (frame pooling)")
    yt.add_argument("root", help="folder holding <name>/<video>/<frames>")
    yt.add_argument("--splits", required=True, help="splits.txt")
    yt.add_argument("--max-frames", type=int, default=30, help="frames per video (evenly spaced; 0 = all)")
    yt.add_argument("--aligned", action="store_true", help="frames are face crops: skip detection")
    _common(yt)
    yt.set_defaults(func=_run_ytf)

    ca = subparsers.add_parser("calibrate", help="cosine threshold for a target FAR from labelled pairs")
    ca.add_argument("pairs", help="CSV path_a,path_b,same (image paths) or .npz with scores and labels")
    ca.add_argument("--far", type=float, default=1e-3, help="target false accept rate (default 1e-3)")
    ca.add_argument("--model", default=None, metavar="PACK_OR_CHECKPOINT", help="model (default: default pack)")
    ca.add_argument(
        "--write",
        default=None,
        metavar="THRESHOLDS.json",
        help="store the threshold with its provenance in this thresholds file (created or merged); use it with "
        "--thresholds FILE or $ARCFACE_THRESHOLDS, or name it thresholds.json beside the recognizer",
    )
    ca.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="folder that relative image paths in the pairs CSV are resolved against (default: the CSV's folder)",
    )
    ca.add_argument(
        "--runtime",
        choices=("onnxruntime", "openvino"),
        default="onnxruntime",
        help="engine to calibrate with (default onnxruntime, the reference); another engine's threshold is stored "
        "under the recognizer's 'engines' table and used only with that engine",
    )
    ca.add_argument("--precision", choices=("f32", "bf16"), default="f32", help="precision of --runtime (default f32)")
    ca.add_argument("--flip", action="store_true", help="flip test-time augmentation (default off, as inference)")
    ca.add_argument("--batch-size", type=int, default=64)
    ca.add_argument("--json", action="store_true", help="print the result as JSON")
    ca.add_argument("--quiet", action="store_true", help="no progress bars")
    add_batch_options(ca)
    ca.set_defaults(func=_run_calibrate)


# --------------------------------------------------------------------------- output


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], curves: list, title: str) -> int:
    from arcface.eval.report import markdown_table, plot_roc, to_json, write_json

    payload: Any = rows[0] if len(rows) == 1 else {"results": rows}
    if args.output:
        write_json(args.output, payload)
    if args.plot and curves:
        plot_roc(curves, args.plot, title=title)
    if args.json:
        print(to_json(payload))
    else:
        print(markdown_table(rows))
        for r in rows:
            if r.get("n_undetected"):
                print(
                    f"{r['model']}: {r['n_undetected']} of {r['n_images']} images had no detected face "
                    "(centre-crop fallback)"
                )
    for r in rows:
        if r.get("warning"):
            print(f"warning: {r['model']} on {r['dataset']}: {r['warning']}", file=sys.stderr)
    unreadable = [u for r in rows for u in r.get("unreadable", [])]
    for u in unreadable:
        print(f"arcface: unreadable image, scored as a grey crop: {u['error']}", file=sys.stderr)
    if unreadable and getattr(args, "strict", False):
        print(f"arcface: error: {len(unreadable)} unreadable image(s) (--strict)", file=sys.stderr)
        return 2
    return 0


def _verification_rows(args: argparse.Namespace, run: Any, need_detector: bool, dataset: str) -> int:
    rows, rocs = [], []
    for spec in args.model or [None]:
        model = _load_model(spec, need_detector)
        for name, summary in run(model):
            row = {"model": model.label, "dataset": name, **summary.to_dict()}
            unmeasurable = [k for k in summary.tar_at_far if summary.n_impostor * float(k) < 1]
            if unmeasurable:
                row["warning"] = (
                    f"{summary.n_impostor} impostor pairs cannot measure FAR {', '.join(unmeasurable)}: "
                    f"TAR there is extrapolated from fewer than one false accept"
                )
            rows.append(row)
            rocs.append((model.label, name, summary.roc.fpr, summary.roc.tpr))
    several = len({r["dataset"] for r in rows}) > 1
    curves = [(f"{m} · {d}" if several else m, fpr, tpr) for m, d, fpr, tpr in rocs]
    return _emit(args, rows, curves, f"ROC - {dataset}")


def _run_bin(args: argparse.Namespace) -> int:
    from arcface.eval.bin_sets import evaluate_bin, load_bin

    sets = [load_bin(f) for f in args.files]  # fail fast on a bad file, before loading models

    def run(model: _Model):
        for bs in sets:
            yield (
                bs.name,
                evaluate_bin(
                    bs, model.embedder, args.batch_size, not args.no_flip, args.folds, args.far, not args.quiet
                ),
            )

    return _verification_rows(args, run, False, ", ".join(s.name for s in sets))


def _run_lfw(args: argparse.Namespace) -> int:
    from arcface.eval.lfw import evaluate_lfw, parse_pairs

    parse_pairs(args.pairs)

    def run(model: _Model):
        analyzer = argparse.Namespace(detector=model.detector, embedder=model.embedder)
        yield (
            "lfw",
            evaluate_lfw(
                args.root,
                args.pairs,
                analyzer,
                batch_size=args.batch_size,
                flip=not args.no_flip,
                fars=args.far,
                show_progress=not args.quiet,
                select=args.select,
            ),
        )

    return _verification_rows(args, run, True, "LFW")


def _run_ijb(args: argparse.Namespace) -> int:
    from arcface.eval.ijb import evaluate_ijb, load_meta

    load_meta(args.root, args.target)

    def run(model: _Model):
        summary, ident = evaluate_ijb(
            args.root,
            model.embedder,
            target=args.target,
            batch_size=args.batch_size,
            flip=not args.no_flip,
            use_detector_score=args.detector_score,
            fars=args.far,
            one_to_n=not args.no_1n,
            show_progress=not args.quiet,
        )
        if ident is not None:
            summary.extra["identification_1n"] = ident
        yield args.target, summary

    return _verification_rows(args, run, False, args.target)


def _run_megaface(args: argparse.Namespace) -> int:
    from arcface.eval.megaface import evaluate_megaface
    from arcface.eval.report import to_json, write_json

    try:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    except ValueError:
        raise InputError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    rows = []
    for spec in args.model or [None]:
        model = _load_model(spec, not args.aligned)
        res = evaluate_megaface(
            args.probes,
            args.distractors,
            model.embedder,
            None if args.aligned else model.detector,
            sizes=sizes,
            batch_size=args.batch_size,
            flip=not args.no_flip,
            show_progress=not args.quiet,
        )
        rows.append({"model": model.label, **res})
    payload: Any = rows[0] if len(rows) == 1 else {"results": rows}
    if args.output:
        write_json(args.output, payload)
    if args.json:
        print(to_json(payload))
    else:
        keys = list(rows[0]["rank1"])
        print("| model | " + " | ".join(f"rank-1 @ {k} distractors %" for k in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for r in rows:
            print(f"| {r['model']} | " + " | ".join(f"{100 * r['rank1'][k]:.2f}" for k in keys) + " |")
    return 0


def _run_ytf(args: argparse.Namespace) -> int:
    from arcface.eval.ytf import evaluate_ytf, parse_splits

    parse_splits(args.splits)

    def run(model: _Model):
        yield (
            "ytf",
            evaluate_ytf(
                args.root,
                args.splits,
                model.embedder,
                None if args.aligned else model.detector,
                max_frames=args.max_frames,
                batch_size=args.batch_size,
                flip=not args.no_flip,
                fars=args.far,
                show_progress=not args.quiet,
            ),
        )

    return _verification_rows(args, run, not args.aligned, "YTF")


def _run_calibrate(args: argparse.Namespace) -> int:
    from arcface.eval.calibration import (
        calibrate,
        calibration_entry,
        read_pairs_csv,
        read_scores_npz,
        score_pairs,
        write_threshold,
    )
    from arcface.eval.report import to_json
    from arcface.thresholds import package_thresholds_path

    if not 0.0 < args.far < 1.0:
        raise InputError(f"--far must lie in (0, 1), got {args.far}")
    engine = (args.runtime, args.precision)
    pairs_path = Path(args.pairs)
    skipped: list[str] = []
    unreadable: list[tuple[str, str]] = []
    model: _Model | None = None
    if pairs_path.suffix.lower() == ".npz":
        scores, labels = read_scores_npz(pairs_path)
    else:
        pairs = read_pairs_csv(pairs_path, args.root)
        model = _load_model(args.model, True, engine)
        ps = score_pairs(
            pairs,
            model.detector,
            model.embedder,
            flip=args.flip,
            batch_size=args.batch_size,
            show_progress=not args.quiet,
        )
        scores, labels, skipped, unreadable = ps.scores, ps.labels, ps.skipped, ps.unreadable
        for _image, reason in unreadable:
            print(f"arcface: skipped (its pairs were dropped): {reason}", file=sys.stderr)
        if unreadable and args.strict:
            raise InputError(f"{len(unreadable)} unreadable image(s) in {pairs_path} (--strict)")
    op = calibrate(scores, labels, args.far)
    result: dict[str, Any] = {
        **op.to_dict(),
        "n_pairs": int(labels.size),
        "n_genuine": int(labels.sum()),
        "n_impostor": int((~labels).sum()),
        "images_without_face": skipped,
        "errors": [{"source": q, "error": r} for q, r in unreadable],
    }
    if op.far == 0 and labels.size and (~labels).sum() * args.far < 1:
        result["warning"] = (
            f"only {int((~labels).sum())} impostor pairs: FAR {args.far:g} cannot be measured; "
            "the threshold only rejects every impostor seen"
        )
    if args.write is not None:
        if model is None:
            model = _load_model(args.model, False, engine)
        if not model.sha256:
            raise InputError("cannot store a threshold: the recognizer's SHA-256 is unknown")
        entry = calibration_entry(op, labels, pairs_path.name, model.label)
        entry["model_sha256"] = model.sha256
        target = Path(args.write)
        if target.resolve() == package_thresholds_path().resolve():
            raise InputError(f"--write {target}: the package's thresholds file is not written at run time")
        result["engine"] = "/".join(engine)
        write_threshold(target, model.sha256, entry, engine="/".join(engine))
        result["written_to"] = str(target)
        result["model_sha256"] = model.sha256
    if args.json:
        print(to_json(result))
    else:
        sq = 2 - 2 * op.threshold
        print(f"threshold (cosine, accept >= ): {op.threshold:.6f}   [squared-L2 equivalent: {sq:.6f}]")
        print(f"target FAR {op.target_far:g}: achieved FAR {op.far:.6f}, TAR {op.tar:.6f}")
        print(f"pairs: {result['n_pairs']} ({result['n_genuine']} genuine, {result['n_impostor']} impostor)")
        if skipped:
            print(f"{len(skipped)} images had no face; their pairs were dropped", file=sys.stderr)
        if "warning" in result:
            print(f"warning: {result['warning']}", file=sys.stderr)
        if "written_to" in result:
            print(f"stored in {result['written_to']}")
    return 0
