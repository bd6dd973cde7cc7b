"""``arcface models list`` and ``arcface models info NAME``: packs found here and the model registry."""

from __future__ import annotations

import argparse

from arcface.cli.common import print_json
from arcface.runtime.cpu import cpu_info


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model packs found on this machine and the registered models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    lp = msub.add_parser("list", help="packs found here (paths, checksums, licence), then every registered model")
    lp.add_argument(
        "--json", action="store_true", help='print {"packs": [...], "models": [...], "cpu": ..., "engine": ...}'
    )
    lp.set_defaults(func=cmd_list)
    ip = msub.add_parser("info", help="one registered model or pack: spec, digests, licence, published figures")
    ip.add_argument("name", help="registered model (w600k_mbf, scrfd_500m_bnkps, ...) or pack (buffalo_l, ...)")
    ip.add_argument("--json", action="store_true")
    ip.set_defaults(func=cmd_info)


def cmd_list(args: argparse.Namespace) -> int:
    from arcface.cli.common import FEW_PHOTOS
    from arcface.models import list_packs, model_cards
    from arcface.runtime import openvino_available, ov_cache

    packs = list_packs()
    cards = [c.to_dict() for c in model_cards().values()]
    engine = _default_engine()
    compiled = ov_cache.summary() if openvino_available() else None
    if args.json:
        print_json(
            {
                "packs": packs,
                "models": cards,
                "cpu": cpu_info().describe(),
                "engine": engine,
                "few_photos": {"max_photos": FEW_PHOTOS, "runtime": "onnxruntime"},
                "openvino_cache": compiled,
            }
        )
        return 0
    print(f"this CPU: {cpu_info().describe()}")
    if "error" in engine:
        print(f"engine: unavailable ({engine['error']})")
    else:
        how = "cached timings" if engine["cached"] else "measured now" if engine["timings_ms"] else "nothing to measure"
        print(f"engine for the default pack ({engine['pack']}): {engine['runtime']}/{engine['precision']} ({how})")
        print(f"      why:        {engine['reason']}")
        print(f"      models:     detector {engine['roles']['detector']}, recognizer {engine['roles']['recognizer']}")
        for name, ms in engine["timings_ms"].items():
            print(f"      {name:<17} {ms:.1f} ms per workload (detector 640x640 + recognizer on 8 crops)")
        for name, why in engine["excluded"].items():
            print(f"      not {name}: {why}")
        if engine["runtime"] != "onnxruntime":
            print(
                f"      a command on {FEW_PHOTOS} photos or fewer (verify A B, detect) runs on onnxruntime: a process"
                " starts sooner with it"
            )
    if compiled is not None:
        print(
            f"OpenVINO compiled models: {compiled['folder']} ({compiled['entries']} entries, "
            f"{compiled['bytes'] / 2**20:.1f} of {compiled['max_bytes'] / 2**20:.0f} MB)"
        )
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


def _default_engine() -> dict:
    """The engine ``--runtime auto --precision auto`` picks for the default pack here (measured once, cached)."""
    from arcface.errors import ArcFaceError
    from arcface.models import resolve_pack
    from arcface.pipeline import pack_engine

    try:
        pack = resolve_pack(None)
        return {"pack": pack.name, **pack_engine(pack, "auto", "auto", None, None).to_dict()}
    except ArcFaceError as exc:
        return {"error": str(exc)}


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
