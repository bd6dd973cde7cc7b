"""``arcface train``, ``arcface data align|pack|info`` and ``arcface clean`` (all but ``data align`` need the
``train`` extra)."""

from __future__ import annotations

import argparse
import json

from arcface.cli.common import add_pack_options
from arcface.face import SELECT_RULES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a recognizer (ArcFace / Partial FC / sub-centers); torchrun-aware",
        description=(
            "Train from a preset (ms1mv3_r50, ms1mv3_r100, glint360k_r100, webface_mbf, wf42m_pfc02_r100, "
            "tiny_cpu) or a JSON/TOML config, with overrides 'key=value', 'section.key=value' or "
            "'--key value'. Example: arcface train ms1mv3_r50 data.path=/data/ms1m run.output=runs/r50 lr=0.2. "
            "Distributed: torchrun --nproc_per_node=8 -m arcface train ms1mv3_r50 data.path=..."
        ),
    )
    p.add_argument("config", nargs="?", help="preset name or config file (.json/.toml)")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="key=value | --key value overrides")
    p.set_defaults(func=cmd_train)

    d = sub.add_parser("data", help="training data tools (align raw photos, RecordIO pack, dataset info)")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    al = dsub.add_parser(
        "align",
        help="detect, pick and align one face per photo into 112x112 training crops (resumable)",
        description="RAW_DIR holds one sub-folder per identity. Each photo is detected and aligned exactly as at "
        "inference; the crops go to OUT_DIR/<identity>/*.png with OUT_DIR/manifest.jsonl (source, box, score, "
        "landmarks). Photos with no face, or with two faces of similar size, are skipped and listed. "
        "Re-running resumes.",
    )
    al.add_argument("raw", metavar="RAW_DIR")
    al.add_argument("out", metavar="OUT_DIR")
    add_pack_options(al)
    al.add_argument("--select", choices=SELECT_RULES, default="largest", help="which face of a photo (default largest)")
    al.add_argument(
        "--ambiguous-ratio",
        type=float,
        default=0.5,
        help="skip a photo when a second face's box area is at least this fraction of the picked one's "
        "(default 0.5; 0 keeps every photo)",
    )
    al.add_argument("--no-progress", action="store_true")
    al.add_argument("--json", action="store_true", help="print the report as JSON")
    al.set_defaults(func=cmd_align)
    pk = dsub.add_parser("pack", help="pack an ImageFolder (one folder per identity) into PREFIX.rec/.idx")
    pk.add_argument("dir")
    pk.add_argument("out_prefix")
    pk.add_argument("--no-progress", action="store_true")
    pk.add_argument(
        "--resize",
        action="store_true",
        help="accept images that are not 112x112 and squash them to 112x112 (they should be aligned crops: "
        "see 'arcface data align')",
    )
    pk.set_defaults(func=cmd_pack)
    info = dsub.add_parser("info", help="images, identities and images-per-identity histogram of a dataset")
    info.add_argument("path", help="ImageFolder root, X.rec, or a folder with train.rec")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    c = sub.add_parser("clean", help="drop noisy samples using a sub-center (K=3) checkpoint")
    c.add_argument("checkpoint", help="checkpoint folder (checkpoints/step_XXXXXXXX) or rank0.pt")
    c.add_argument("data", help="the dataset the checkpoint was trained on")
    c.add_argument("--out", required=True, help="output folder for cleaned.lst, report, histogram")
    c.add_argument("--threshold", type=float, default=75.0, help="max angle to the dominant sub-center (degrees)")
    c.add_argument("--rec", action="store_true", help="also write cleaned.rec/.idx")
    c.add_argument("--list-file", default=None, help="the data.list_file used in training, if any")
    c.add_argument("--device", default="cpu")
    c.add_argument("--batch-size", type=int, default=128)
    c.set_defaults(func=cmd_clean)


def cmd_train(args: argparse.Namespace) -> int:
    from arcface.errors import InputError, require

    require("torch", "train")
    from arcface.train.config import PRESETS, build_config

    if args.list_presets:
        for name in sorted(PRESETS):
            cfg = PRESETS[name]()
            print(
                f"{name:<18} {cfg.model.network:<11} margin={cfg.head.margin_list} s={cfg.head.scale:g} "
                f"lr={cfg.optim.lr:g} wd={cfg.optim.weight_decay:g} batch={cfg.optim.batch_size}/proc "
                f"epochs={cfg.optim.epochs} sample_rate={cfg.head.sample_rate:g}"
            )
        return 0
    if not args.config:
        raise InputError("give a preset name or a config file (see --list-presets)")
    cfg = build_config(args.config, args.overrides)
    if args.print_config:
        print(cfg.to_json())
        return 0
    import logging

    from arcface.train.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trainer = Trainer(cfg)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    if trainer.ctx.is_main:
        print(json.dumps({k: v for k, v in summary.items()}, default=float))
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from arcface.cli.common import analyzer_from_args, print_json
    from arcface.train.prepare import align_folder

    fa = analyzer_from_args(args)
    report = align_folder(
        args.raw, args.out, fa, select=args.select, ambiguous_ratio=args.ambiguous_ratio, progress=not args.no_progress
    )
    if args.json:
        print_json(report.to_dict())
        return 0
    c = report.counts
    print(
        f"{c['ok']} crops of {report.identities} identities in {args.out} "
        f"({c['no_face']} without a face, {c['ambiguous']} ambiguous, {c['unreadable']} unreadable; "
        f"{report.resumed} already done)"
    )
    for src, status in report.skipped[:20]:
        print(f"  skipped {src}: {status}")
    if len(report.skipped) > 20:
        print(f"  ... and {len(report.skipped) - 20} more (see {report.manifest})")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from arcface.errors import require

    require("torch", "train")
    from arcface.train.data import pack_folder

    rec, idx = pack_folder(args.dir, args.out_prefix, progress=not args.no_progress, resize=args.resize)
    print(f"wrote {rec} and {idx}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from arcface.errors import require

    require("torch", "train")
    from arcface.train.data import dataset_info

    info = dataset_info(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']} ({info['format']})")
    print(f"  images:      {info['images']}")
    print(f"  identities:  {info['identities']}")
    s = info["images_per_identity"]
    print(f"  per identity: min {s['min']}, median {s['median']:g}, mean {s['mean']:.2f}, max {s['max']}")
    if info["corrupt_records"]:
        print(f"  corrupt records skipped: {info['corrupt_records']}")
    print("  images per identity   identities")
    width = max(info["histogram"].values()) or 1
    for label, n in info["histogram"].items():
        print(f"  {label:>18}   {n:>10}  {'#' * int(round(40 * n / width))}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from arcface.errors import require

    require("torch", "train")
    from arcface.train.clean import clean_checkpoint

    report = clean_checkpoint(
        args.checkpoint,
        args.data,
        args.out,
        threshold_deg=args.threshold,
        write_rec=args.rec,
        list_file=args.list_file,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(
        f"kept {report['kept']} / {report['samples']} samples, dropped {report['dropped']} "
        f"(threshold {report['threshold_deg']:g} deg); {report['classes_emptied']} classes emptied"
    )
    print(f"wrote {args.out}/cleaned.lst, clean_report.json, angles.png" + (", cleaned.rec" if args.rec else ""))
    return 0
