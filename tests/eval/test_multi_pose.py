"""The multi-pose set loader (CMU Face Images layout): names parsed, the source's ``.bad`` files and other scales
left out, misnamed files refused by name, a manifest digest that follows the bytes, and frontal-other pairs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from arcface.eval.multi_pose import POSES, load_multi_pose, manifest_digest, parse_name, pose_pairs


def _tree(root: Path, people=("an2i", "tammo")) -> Path:
    for who in people:
        d = root / who
        d.mkdir(parents=True)
        for pose, expr, eyes in itertools.product(POSES, ("neutral", "happy"), ("open", "sunglasses")):
            for suffix in ("", "_2", "_4"):
                (d / f"{who}_{pose}_{expr}_{eyes}{suffix}.pgm").write_bytes(f"P2\n1 1\n255\n{len(suffix)}\n".encode())
        (d / f"{who}_up_sad_open.bad").write_bytes(b"glitch")  # the source marks its glitches this way
        (d / "notes.txt").write_text("not a photo")
    return root


def test_load_parses_names_and_keeps_one_scale(tmp_path):
    root = _tree(tmp_path / "faces")
    full = load_multi_pose(root)
    assert len(full) == 2 * 4 * 2 * 2 and all(p.scale == 1 for p in full)
    assert [p.path for p in full] == sorted(p.path for p in full)
    first = full[0]
    assert (first.identity, first.pose, first.expression, first.eyes) == ("an2i", "left", "happy", "open")
    assert {p.pose for p in full} == set(POSES) and {p.identity for p in full} == {"an2i", "tammo"}
    quarter = load_multi_pose(root, scale=4)
    assert len(quarter) == len(full) and all(p.path.name.endswith("_4.pgm") for p in quarter)
    with pytest.raises(ValueError, match="scale"):
        load_multi_pose(root, scale=3)


@pytest.mark.parametrize(
    "name",
    [
        "an2i_sideways_happy_open.pgm",  # unknown pose
        "an2i_left_bored_open.pgm",  # unknown expression
        "an2i_left_happy_closed.pgm",  # unknown eyes
        "an2i_left_happy_open_3.pgm",  # unknown scale
        "an2i_left_happy.pgm",  # a field missing
        "tammo_left_happy_open.pgm",  # another person's photo in an2i's folder
    ],
)
def test_a_misnamed_photo_is_refused_by_name(tmp_path, name):
    root = _tree(tmp_path / "faces", people=("an2i",))
    (root / "an2i" / name).write_bytes(b"P2\n1 1\n255\n0\n")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        load_multi_pose(root)
    with pytest.raises(ValueError, match="not a multi-pose photo name"):
        parse_name(root / "an2i" / name)


def test_missing_or_empty_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_multi_pose(tmp_path / "nowhere")
    (tmp_path / "empty" / "an2i").mkdir(parents=True)
    with pytest.raises(ValueError, match="no <person>"):
        load_multi_pose(tmp_path / "empty")


def test_manifest_digest_follows_the_bytes_not_the_location(tmp_path):
    a = _tree(tmp_path / "a" / "faces")
    b = _tree(tmp_path / "b" / "faces")
    da, db = manifest_digest(load_multi_pose(a), a), manifest_digest(load_multi_pose(b), b)
    assert da == db and len(da) == 64
    victim = b / "tammo" / "tammo_up_neutral_open.pgm"
    victim.write_bytes(victim.read_bytes() + b" ")
    assert manifest_digest(load_multi_pose(b), b) != da
    assert manifest_digest(load_multi_pose(a, scale=2), a) != da  # other files, other digest


def test_pose_pairs_are_every_frontal_other_pair_once(tmp_path):
    photos = load_multi_pose(_tree(tmp_path / "faces"))
    n = {pose: sum(p.pose == pose for p in photos) for pose in POSES}
    turned = pose_pairs(photos, {"straight"}, {"left", "right"})
    assert len(turned) == n["straight"] * (n["left"] + n["right"]) == 8 * 16
    assert len(set(turned)) == len(turned) and all(i < j for i, j in turned)
    for i, j in turned:
        assert {photos[i].pose, photos[j].pose} & {"straight"} and {photos[i].pose, photos[j].pose} - {"straight"}
    frontal = pose_pairs(photos, {"straight"}, {"straight"})
    assert len(frontal) == n["straight"] * (n["straight"] - 1) // 2
