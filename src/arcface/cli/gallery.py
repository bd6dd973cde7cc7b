"""``arcface gallery ...`` (1:N identification against a gallery directory) and ``arcface cluster``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from arcface.cli.common import (
    add_batch_options,
    add_pack_options,
    add_select_option,
    analyzer_from_args,
    image_files,
    print_json,
    report_failures,
)


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "gallery",
        help="1:N identification: enrol people, search photos against them",
        description="Manage a gallery directory of enrolled identities and search faces against it. "
        "Similarities are cosine in [-1, 1]; below the threshold a face is 'unknown'.",
    )
    _gallery_options(g)
    gs = g.add_subparsers(dest="gallery_command", metavar="ACTION")
    gs.required = True

    p = gs.add_parser("enroll", help="enrol (or extend) an identity from photos, one face of each (--select)")
    _gallery_options(p)
    p.add_argument("name", help="identity name")
    p.add_argument("images", nargs="+", help="photos of that person (files or folders)")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata (repeatable)")
    p.add_argument("--replace", action="store_true", help="replace the identity's photos instead of adding")
    add_select_option(p)
    add_batch_options(p)
    add_pack_options(p)
    p.set_defaults(func=cmd_enroll)

    p = gs.add_parser(
        "enroll-folders",
        help="enrol one identity per sub-folder of ROOT (named after it); re-runs add only new photos",
        description="ROOT/<identity>/<photos>: each sub-folder becomes the identity named after it. A photo "
        "with several faces enrols nothing unless --largest; a photo already enrolled (same bytes) is skipped.",
    )
    _gallery_options(p)
    p.add_argument("root", type=Path, metavar="ROOT", help="folder of identity sub-folders")
    p.add_argument("--largest", action="store_true", help="take the largest face of group photos (--select largest)")
    add_select_option(p, default=None)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_pack_options(p)
    p.set_defaults(func=cmd_enroll_folders)

    p = gs.add_parser("search", help="identify every face of photos (files or folders; one model load)")
    _gallery_options(p)
    p.add_argument("images", nargs="+", metavar="PATH", help="photos or folders of photos")
    p.add_argument("--top-k", type=int, default=5, help="candidates per face (default 5)")
    p.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the pack's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_pack_options(p)
    p.set_defaults(func=cmd_search)

    p = gs.add_parser("list", help="list enrolled identities")
    _gallery_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = gs.add_parser("remove", help="delete an identity")
    _gallery_options(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)

    p = gs.add_parser("rename", help="rename an identity")
    _gallery_options(p)
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(func=cmd_rename)

    f = sub.add_parser(
        "find",
        help="deepface-style: search photos against a folder of identity sub-folders (cached, kept in step)",
        description="Builds a gallery of DB_PATH/<identity>/<photos> on first use (cached in DB_PATH/.arcface/), "
        "updates it when photos are added or removed, then identifies every face of each IMAGE.",
    )
    f.add_argument("images", nargs="+", metavar="IMAGE", help="photos or folders of photos")
    f.add_argument("--db-path", required=True, type=Path, help="folder of identity sub-folders")
    f.add_argument("--largest", action="store_true", help="enrol the largest face of group photos in DB_PATH")
    add_select_option(f, default=None)
    f.add_argument("--top-k", type=int, default=5, help="candidates per face (default 5)")
    f.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the pack's)")
    f.add_argument("--json", action="store_true", help="print one JSON object per image")
    add_batch_options(f)
    add_pack_options(f)
    f.set_defaults(func=cmd_find)

    c = sub.add_parser(
        "cluster",
        help="group unlabelled photos by identity",
        description="Detect and embed every face under DIR and group the faces by identity "
        "(agglomerative clustering on cosine similarity).",
    )
    c.add_argument("dir", type=Path, help="folder of photos (recursed)")
    c.add_argument("--threshold", type=float, default=None, help="cosine threshold (default: the pack's)")
    c.add_argument("--method", default="average", choices=("average", "single"), help="linkage (default average)")
    c.add_argument("--largest", action="store_true", help="only the largest face of each photo (--select largest)")
    add_select_option(c, default=None)
    c.add_argument("--out", type=Path, default=None, help="write the clusters as JSON here (default stdout)")
    add_batch_options(c)
    add_pack_options(c)
    c.set_defaults(func=cmd_cluster)


def _gallery_options(p: argparse.ArgumentParser) -> None:
    """``--db``, ``--backend``, ``--milvus-uri``, accepted before the action and after it (both copies default to
    SUPPRESS, so whichever is given lands in the namespace; :func:`_db_options` reads them)."""
    p.add_argument("--db", type=Path, default=argparse.SUPPRESS, help="gallery directory (created by 'enroll')")
    p.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        choices=("auto", "numpy", "faiss", "milvus"),
        help="vector index (default auto: faiss if installed, else numpy)",
    )
    p.add_argument(
        "--milvus-uri", default=argparse.SUPPRESS, help="Milvus URI for --backend milvus (default: DB/milvus.db)"
    )
    p.add_argument(
        "--storage",
        default=argparse.SUPPRESS,
        choices=("float32", "float16", "int8"),
        help="how the FAISS index holds vectors in memory (default float32; int8: 4x the capacity, an exact scan "
        "over 1-byte codes; the gallery files keep float32)",
    )


def _db_options(args: argparse.Namespace) -> tuple[Path, str, str | None]:
    from arcface.errors import InputError

    db = getattr(args, "db", None)
    if db is None:
        raise InputError("give the gallery directory: arcface gallery --db DIR ACTION ... (or ACTION ... --db DIR)")
    return db, getattr(args, "backend", "auto"), getattr(args, "milvus_uri", None)


def parse_meta(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; a value that parses as JSON (number, bool, list...) is kept typed."""
    from arcface.errors import InputError

    meta: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--meta {item!r}: expected KEY=VALUE")
        try:
            meta[key.strip()] = json.loads(value)
        except ValueError:
            meta[key.strip()] = value
    return meta


def _open(args: argparse.Namespace, analyzer: Any = None, create: bool = False, index: bool = True):
    from arcface.errors import InputError
    from arcface.gallery import EmbeddingContract, Gallery

    db, backend, milvus_uri = _db_options(args)
    options: dict[str, Any] = {"uri": milvus_uri} if milvus_uri and backend == "milvus" else {}
    storage = getattr(args, "storage", "float32")
    if storage != "float32":
        if backend not in ("auto", "faiss"):
            raise InputError(f"--storage {storage} needs the faiss backend (got --backend {backend})")
        backend, options["storage"] = "faiss", storage
    return Gallery(
        db,
        contract=EmbeddingContract.from_analyzer(analyzer) if analyzer is not None else None,
        backend=backend if index else "numpy",
        backend_options=options if index else None,
        create=create,
        threshold=analyzer.threshold.value if analyzer is not None else None,
    )


def _one_face_rule(args: argparse.Namespace) -> str | None:
    """The rule picking one face of a group photo (``--select``, or ``--largest``), ``None``: all / none."""
    return args.select or ("largest" if args.largest else None)


def cmd_enroll(args: argparse.Namespace) -> int:
    import numpy as np

    from arcface.errors import NoFaceError
    from arcface.face import select_face

    meta = parse_meta(args.meta)
    files = image_files(args.images)
    fa = analyzer_from_args(args, photos=len(files))
    per_image = fa.analyze_many(files, on_error="skip")
    failures = [e.to_dict() for e in per_image.errors]
    failures += [
        {"index": k, "source": str(path), "error": "no face found"}
        for k, (path, faces) in enumerate(zip(files, per_image, strict=True))
        if not faces and k not in per_image.failed
    ]
    chosen = [(path, select_face(faces, args.select)) for path, faces in zip(files, per_image, strict=True) if faces]
    rows = [face.embedding for _, face in chosen]
    for path, face in chosen:
        if face.found_by_fallback:
            print(f"note: {path}: {_fallback_note(face.path)}", file=sys.stderr)
    early = report_failures(failures, args.strict, len(rows))
    if early is not None:
        if not rows and len(failures) == sum(f["error"] == "no face found" for f in failures):
            raise NoFaceError(f"no face found in any photo of {args.name!r}")
        return early
    from arcface.gallery import EmbeddingContract

    with _open(args, fa, create=True) as gallery:
        info = gallery.enroll(
            args.name, np.stack(rows), meta, replace=args.replace, contract=EmbeddingContract.from_analyzer(fa)
        )
        skipped = f", {len(failures)} skipped" if failures else ""
        print(
            f"enrolled {info['name']!r}: {len(rows)} photo(s){skipped}, {info['images']} in total; "
            f"{len(gallery)} identities"
        )
    return 0


def _search_rows(gallery: Any, faces: list, top_k: int, threshold: float | None) -> list[dict[str, Any]]:
    import numpy as np

    if not faces:
        return []
    results = gallery.search_batch(np.stack([f.embedding for f in faces]), top_k=top_k, threshold=threshold)
    return [
        {
            "bbox": [round(float(v), 2) for v in face.bbox],
            "score": round(float(face.score), 4),
            "identity": res.identity,
            "similarity": None if res.similarity is None else round(res.similarity, 6),
            "matches": [m.to_dict() for m in res.matches],
        }
        for face, res in zip(faces, results, strict=True)
    ]


def _print_search(image: str, rows: list[dict[str, Any]], threshold: float, as_json: bool, size: int) -> None:
    if as_json:
        print(json.dumps({"image": image, "threshold": threshold, "gallery_size": size, "faces": rows}))
        return
    if not rows:
        print(f"{image}: no face found")
    for i, row in enumerate(rows):
        box = ", ".join(f"{v:.0f}" for v in row["bbox"])
        sim = "n/a" if row["similarity"] is None else f"{row['similarity']:.4f}"
        print(f"{image}: face {i} [{box}]: {row['identity']} (cosine {sim}, threshold {threshold:.4f})")
        for m in row["matches"][1:]:
            print(f"    also: {m['candidate']} ({m['similarity']:.4f})")


def _search_files(args: argparse.Namespace, fa: Any, gallery: Any, files: list) -> int:
    """Search every face of every file of ``files``: one line (or JSON object) per image."""
    per_image = fa.analyze_many(files, on_error="skip", progress=len(files) > 20 and sys.stderr.isatty())
    failures = [e.to_dict() for e in per_image.errors]
    early = report_failures(failures, getattr(args, "strict", False), len(files) - len(failures))
    if early is not None:
        return early
    threshold = gallery.threshold if args.threshold is None else args.threshold
    found = 0
    for k, (path, faces) in enumerate(zip(files, per_image, strict=True)):
        if k in per_image.failed:
            continue
        rows = _search_rows(gallery, faces, args.top_k, args.threshold)
        found += bool(rows)
        _print_search(str(path), rows, threshold, args.json, len(gallery))
    return 0 if found else 1


def cmd_search(args: argparse.Namespace) -> int:
    files = image_files(args.images)
    fa = analyzer_from_args(args, photos=len(files))
    with _open(args, fa) as gallery:
        return _search_files(args, fa, gallery, files)


def _fallback_note(stage: str) -> str:
    from arcface.face import stage_phrase

    return f"the face was found by {stage_phrase(stage)} (a last resort): check the photo"


def cmd_enroll_folders(args: argparse.Namespace) -> int:
    from arcface.gallery.folders import sync_folders

    fa = analyzer_from_args(args)
    with _open(args, fa, create=True) as gallery:
        report = sync_folders(gallery, fa, args.root, select=_one_face_rule(args), progress=sys.stderr.isatty())
        if args.json:
            print_json({**report.to_dict(), "identities": len(gallery)})
            return 0
        for name, n in report.enrolled.items():
            print(f"enrolled {name!r}: {n} new photo(s)")
        for photo, reason in report.skipped:
            print(f"skipped {photo}: {reason}", file=sys.stderr)
        for photo, stage in report.fallback:
            print(f"note: {photo}: {_fallback_note(stage)}", file=sys.stderr)
        print(
            f"{len(report.enrolled)} identities updated, {len(report.unchanged)} unchanged, "
            f"{len(report.skipped)} photo(s) skipped; {len(gallery)} identities in {_db_options(args)[0]}"
        )
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    from arcface.gallery import EmbeddingContract, Gallery
    from arcface.gallery.folders import sync_folders

    fa = analyzer_from_args(args)
    contract = EmbeddingContract.from_analyzer(fa)
    # one cache per model: a gallery holds one model's embeddings
    cache = Path(args.db_path) / ".arcface" / f"gallery-{(contract.model_sha256 or 'custom')[:12]}"
    with Gallery(cache, contract=contract, create=True, threshold=fa.threshold.value) as gallery:
        report = sync_folders(gallery, fa, args.db_path, select=_one_face_rule(args), prune=True)
        changed = len(report.enrolled) + len(report.removed)
        print(
            f"gallery {cache}: {len(gallery)} identities ({changed} updated, {len(report.skipped)} photo(s) skipped)",
            file=sys.stderr,
        )
        return _search_files(args, fa, gallery, image_files(args.images))


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args, index=False) as gallery:
        items = gallery.list()
        if args.json:
            contract = gallery.contract.to_dict() if gallery.contract else None
            print_json({"db": str(_db_options(args)[0]), "contract": contract, "identities": items})
        else:
            for it in items:
                meta = json.dumps(it["metadata"]) if it["metadata"] else ""
                print(f"{it['name']}\t{it['images']} image(s)\t{meta}".rstrip())
            what = gallery.contract.describe() if gallery.contract else "empty"
            print(f"{len(items)} identities ({what})", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with _open(args, index=False) as gallery:
        gallery.remove(args.name)
        print(f"removed {args.name!r}; {len(gallery)} identities left")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    with _open(args, index=False) as gallery:
        gallery.rename(args.old, args.new)
        print(f"renamed {args.old!r} to {args.new!r}")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from arcface.errors import InputError
    from arcface.face import face_index, select_face
    from arcface.gallery import cluster_embeddings
    from arcface.gallery.fileio import atomic_write_bytes

    if not args.dir.is_dir():
        raise InputError(f"{args.dir}: not a folder")
    files = image_files([args.dir])
    fa = analyzer_from_args(args, photos=len(files))
    threshold = fa.threshold.value if args.threshold is None else args.threshold
    per_image = fa.analyze_many(files, progress=sys.stderr.isatty() and len(files) > 20, on_error="skip")
    errors = [e.to_dict() for e in per_image.errors]
    early = report_failures(errors, args.strict, len(files) - len(errors))
    if early is not None:
        return early
    items, no_face = [], []
    for k, (path, faces) in enumerate(zip(files, per_image, strict=True)):
        if not faces:
            if k not in per_image.failed:
                no_face.append(str(path))
            continue
        rule = _one_face_rule(args)
        chosen = [select_face(faces, rule)] if rule else faces
        for face in chosen:
            items.append((str(path), face_index(faces, face), face))
    labels = (
        cluster_embeddings(np.stack([f.embedding for _, _, f in items]), threshold, args.method)
        if items
        else np.zeros(0, np.int64)
    )
    clusters: list[dict[str, Any]] = []
    for c in range(int(labels.max()) + 1 if labels.size else 0):
        members = [
            {"path": p, "face": i, "bbox": [round(float(v), 2) for v in f.bbox], "score": round(float(f.score), 4)}
            for (p, i, f), lab in zip(items, labels, strict=True)
            if lab == c
        ]
        clusters.append({"cluster": c, "size": len(members), "members": members})
    result = {
        "threshold": threshold,
        "method": args.method,
        "pack": fa.pack.name,
        "photos": len(files),
        "faces": len(items),
        "clusters": clusters,
        "no_face": no_face,
        "errors": errors,
    }
    if args.out:
        atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        multi = sum(1 for c in clusters if c["size"] > 1)
        print(
            f"{len(items)} faces in {len(files)} photos -> {len(clusters)} clusters "
            f"({multi} with more than one face); written to {args.out}"
        )
    else:
        print_json(result)
    return 0
