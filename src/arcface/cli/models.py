"""``arcface models list`` and ``arcface models info NAME``: packs found here and the model registry."""

from __future__ import annotations

import argparse

from arcface.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model packs found on this machine and the registered models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    lp = msub.add_parser("list", help="packs found here (paths, checksums, licence), then every registered model")
    lp.add_argument("--json", action="store_true", help='print {"packs": [...], "models": [...]}')
    lp.set_defaults(func=cmd_list)
    ip = msub.add_parser("info", help="one registered model or pack: spec, digests, licence, published figures")
    ip.add_argument("name", help="registered model (w600k_mbf, scrfd_500m_bnkps, ...) or pack (buffalo_l, ...)")
    ip.add_argument("--json", action="store_true")
    ip.set_defaults(func=cmd_info)


def cmd_list(args: argparse.Namespace) -> int:
    from arcface.models import list_packs, model_cards

    packs = list_packs()
    cards = [c.to_dict() for c in model_cards().values()]
    if args.json:
        print_json({"packs": packs, "models": cards})
        return 0
    print("packs on this machine:")
    for p in packs:
        if "error" in p:
            print(f"  {p['name']:<12} {p['source']:<12} ERROR: {p['error']}")
            continue
        status = "sha256 verified" if p["verified"] else "unverified (no published digest)"
        print(f"  {p['name']:<12} {p['source']:<12} {status}")
        print(f"      detector:   {p['detector']} ({p['detector_family']})")
        print(f"      recognizer: {p['recognizer']}")
        print(f"      licence:    {p['licence']}")
    print("registered models (arcface models info NAME for details):")
    for c in cards:
        figures = ", ".join(f"{k} {v:g}" for k, v in c["published"].items())
        print(f"  {c['name']:<18} {c['role']:<10} {c['description']}")
        if figures:
            print(f"      published: {figures}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from arcface.errors import InputError
    from arcface.models import get_pack, model_cards

    cards = model_cards()
    if args.name in cards:
        info = cards[args.name].to_dict()
    elif get_pack(args.name) is not None:
        pack = get_pack(args.name)
        assert pack is not None
        info = {
            "pack": pack.name,
            "description": pack.description,
            "licence": pack.licence,
            "detector": pack.detector_card.to_dict(),
            "recognizer": pack.recognizer_card.to_dict(),
        }
    else:
        known = ", ".join(sorted(cards))
        raise InputError(f"{args.name!r} is neither a registered model nor a registered pack; models: {known}")
    print_json(info)
    return 0
