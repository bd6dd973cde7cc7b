"""MegaFace rank-1 against a brute-force loop; YTF frame pooling against a direct computation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from eval_fakes import PatternEmbedder

from arcface.errors import InputError
from arcface.eval import megaface, ytf
from arcface.eval.metrics import kfold_accuracy


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_distractor_maxima_prefixes():
    rng = np.random.default_rng(0)
    q, db = _unit(rng.normal(size=(7, 8))), _unit(rng.normal(size=(300, 8)))
    got = megaface.distractor_maxima(q, db, [10, 100, 300], use_faiss=False)
    for i, n in enumerate((10, 100, 300)):
        np.testing.assert_allclose(got[i], (q @ db[:n].T).max(axis=1), rtol=1e-6)
    got_small_blocks = megaface._max_inner_numpy(q.astype(np.float32), db.astype(np.float32), block=7)
    np.testing.assert_allclose(got_small_blocks, got[-1], rtol=1e-6)


def test_megaface_rank1_brute_force():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16))
    labels = np.repeat(np.arange(5), 4)
    probes = _unit(centres[labels] + rng.normal(size=(20, 16)) * 0.8)
    dis = _unit(rng.normal(size=(1000, 16)))
    res = megaface.megaface_rank1(probes, labels, dis, sizes=(10, 100, 1000, 10_000))
    assert res["skipped_sizes"] == [10_000] and res["n_searches"] == 5 * 4 * 3
    for n in (10, 100, 1000):
        ok = total = 0
        for i in range(20):
            for j in range(20):
                if i != j and labels[i] == labels[j]:
                    total += 1
                    ok += probes[i] @ probes[j] > max(probes[i] @ d for d in dis[:n])
        assert res["rank1"][str(n)] == pytest.approx(ok / total)
    rates = [res["rank1"][k] for k in ("10", "100", "1000")]
    assert rates == sorted(rates, reverse=True)  # more distractors never help
    with pytest.raises(InputError):
        megaface.megaface_rank1(probes, labels, dis[:5], sizes=(10,))


def _pattern(rng, size=64):
    return cv2.resize(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def test_evaluate_megaface_folders(tmp_path):
    rng = np.random.default_rng(2)
    for ident in ("a", "b"):
        base = _pattern(rng)
        (tmp_path / "probes" / ident).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(tmp_path / "probes" / ident / f"{k}.png"), base)
    (tmp_path / "dis" / "x").mkdir(parents=True)
    for k in range(12):
        cv2.imwrite(str(tmp_path / "dis" / "x" / f"{k:02d}.png"), _pattern(rng))
    res = megaface.evaluate_megaface(tmp_path / "probes", tmp_path / "dis", PatternEmbedder(), sizes=(10, 100))
    assert res["rank1"] == {"10": 1.0} and res["skipped_sizes"] == [100] and res["n_probes"] == 6


def _splits(path, rows):
    path.write_text(
        "split number, first name, second name, common meta data, is same\n"
        + "".join(f"{s}, {a}, {b}, 0, {y}\n" for s, a, b, y in rows)
    )


def test_ytf_pooling_and_evaluation(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "frames"
    names = ["P1", "P2", "P3", "P4"]
    bases = {n: _pattern(rng) for n in names}
    for n in names:
        for v in (0, 1):
            d = root / n / str(v)
            d.mkdir(parents=True)
            for f in range(5):
                img = np.clip(bases[n] + rng.normal(0, 25, bases[n].shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{f}.png"), img)
    rows = [(s, f"{names[i]}/0", f"{names[i]}/1", 1) for s in (1, 2) for i in range(2 * (s - 1), 2 * s)]
    rows += [(s, f"{names[i]}/0", f"{names[(i + 1) % 4]}/1", 0) for s in (1, 2) for i in range(2 * (s - 1), 2 * s)]
    _splits(tmp_path / "splits.txt", rows)
    emb = PatternEmbedder()
    res = ytf.evaluate_ytf(root, tmp_path / "splits.txt", emb, max_frames=3)
    assert res.extra["n_videos"] == 8 and res.extra["n_frames"] == 24

    def video_feature(v):
        frames = sorted((root / v).iterdir())
        chosen = [frames[i] for i in (0, 2, 4)]  # 3 evenly spaced of 5
        e = emb.embed(np.stack([cv2.resize(cv2.imread(str(q))[..., ::-1], (112, 112)) for q in chosen]), True)
        m = e.mean(axis=0)
        return m / np.linalg.norm(m)

    scores = [video_feature(a) @ video_feature(b) for _, a, b, _ in rows]
    ref = kfold_accuracy(scores, [y for *_, y in rows], folds=[s for s, *_ in rows])
    assert res.accuracy == pytest.approx(ref.accuracy)
    assert res.threshold == pytest.approx(ref.threshold, abs=1e-5)


def test_ytf_errors(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("header only\n")
    with pytest.raises(InputError, match="no pairs"):
        ytf.parse_splits(p)
    with pytest.raises(InputError, match="no frames"):
        ytf.video_frames(tmp_path, "nobody/0", 5)


def test_ytf_reads_video_files_like_frame_folders(tmp_path):
    """The same frames as folders of PNGs and as lossless video files give the same protocol result."""
    rng = np.random.default_rng(4)
    folders, videos = tmp_path / "frames", tmp_path / "videos"
    names = ["P1", "P2", "P3", "P4"]
    bases = {n: _pattern(rng) for n in names}
    for n in names:
        for v in (0, 1):
            (folders / n / str(v)).mkdir(parents=True)
            (videos / n).mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(videos / n / f"{v}.avi"), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (64, 64))
            assert writer.isOpened()
            for f in range(5):
                img = np.clip(bases[n] + rng.normal(0, 25, bases[n].shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folders / n / str(v) / f"{f}.png"), img)
                writer.write(img)
            writer.release()
    rows = [(s, f"{names[i]}/0", f"{names[i]}/1", 1) for s in (1, 2) for i in range(2 * (s - 1), 2 * s)]
    rows += [(s, f"{names[i]}/0", f"{names[(i + 1) % 4]}/1", 0) for s in (1, 2) for i in range(2 * (s - 1), 2 * s)]
    _splits(tmp_path / "splits.txt", rows)
    emb = PatternEmbedder()
    from_folders = ytf.evaluate_ytf(folders, tmp_path / "splits.txt", emb, max_frames=3)
    from_videos = ytf.evaluate_ytf(videos, tmp_path / "splits.txt", emb, max_frames=3)
    assert from_videos.extra["n_frames"] == from_folders.extra["n_frames"] == 24
    assert from_videos.accuracy == pytest.approx(from_folders.accuracy)
    assert from_videos.threshold == pytest.approx(from_folders.threshold, abs=1e-4)  # FFV1 is lossless
