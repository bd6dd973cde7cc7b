"""``arcface models list``."""

from __future__ import annotations

import argparse

from arcface.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model packs found on this machine")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    lp = msub.add_parser("list", help="list packs, where they are, checksums and licence")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from arcface.zoo import list_packs

    packs = list_packs()
    if args.json:
        print_json(packs)
        return 0
    for p in packs:
        if "error" in p:
            print(f"{p['name']:<12} {p['source']:<12} ERROR: {p['error']}")
            continue
        status = "sha256 verified" if p["verified"] else "unverified (no published digest)"
        print(f"{p['name']:<12} {p['source']:<12} {status}")
        print(f"    detector:   {p['detector']}")
        print(f"    recognizer: {p['recognizer']}")
        print(f"    licence:    {p['licence']}")
    return 0
