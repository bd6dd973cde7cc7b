"""``arcface model-info [NAME]``: parameters and GFLOPs of the registered torch backbones (needs torch)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model-info",
        help="parameters and GFLOPs (multiply-adds) of a torch backbone (needs arcface[train])",
        description="Print the parameter count and GFLOPs (conv/linear multiply-adds for one 112x112 face) "
        "of a registered backbone, or of all of them when NAME is omitted.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="backbone name, e.g. iresnet50, mbf (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_model_info)


def cmd_model_info(args: argparse.Namespace) -> int:
    from arcface.errors import require

    torch = require("torch", "train")
    from arcface.nn import create_model, list_models, profile_model

    names = [args.name] if args.name else list_models()
    rows = []
    for name in names:
        with torch.device("meta"):  # shapes only: no memory, no arithmetic
            model = create_model(name)
        prof = profile_model(model)
        rows.append({"name": name, "params": prof.params, "mparams": prof.mparams, "gflops": prof.gflops})
    if args.json:
        from arcface.cli.common import print_json

        print_json(rows if args.name is None else rows[0])
        return 0
    print(f"{'model':<12} {'params (M)':>11} {'GFLOPs':>8}")
    for r in rows:
        print(f"{r['name']:<12} {r['mparams']:>11.2f} {r['gflops']:>8.3f}")
    return 0
