"""IJB-B/C with a tiny synthetic meta set and a codebook embedder keyed by image content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from eval_fakes import CodebookEmbedder, crop_align, key_image

from arcface.errors import InputError
from arcface.eval import ijb
from arcface.eval.metrics import roc_curve, tar_at_far


def test_media_pooling_hand_case():
    e1, e2 = np.eye(2)
    # template 7: media 1 holds three copies of e1, media 2 one e2 -> normalize(e1 + e2), not (3e1 + e2)
    emb = np.stack([e1, e1, e1, e2, e2])
    t, f = ijb.template_features(emb, np.array([7, 7, 7, 7, 9]), np.array([1, 1, 1, 2, 5]))
    assert t.tolist() == [7, 9]
    np.testing.assert_allclose(f[0], np.array([1, 1]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(f[1], e2)
    # detector-score weighting: media 1 mean becomes 0.5 * e1
    _, fw = ijb.template_features(emb, np.array([7, 7, 7, 7, 9]), np.array([1, 1, 1, 2, 5]), [0.5] * 3 + [1, 1])
    np.testing.assert_allclose(fw[0], np.array([0.5, 1]) / np.hypot(0.5, 1), rtol=1e-6)


def _make_ijb(root, rng, n_subjects=6, templates_per_subject=3):
    """Synthetic IJB-C: each face image is a uniform colour keyed to a codebook row."""
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    dim = 16
    subj_centre = rng.normal(size=(n_subjects, dim))
    codebook, faces, pts = [], [], []
    tid_subject = {}
    tid = 100
    for s in range(n_subjects):
        for _ in range(templates_per_subject):
            tid += 1
            tid_subject[tid] = s
            for m in range(int(rng.integers(1, 3))):
                mid = tid * 10 + m
                for _ in range(int(rng.integers(1, 4))):
                    key = len(codebook)
                    codebook.append(subj_centre[s] + rng.normal(size=dim) * 1.2)
                    name = f"{key}.jpg"
                    img = key_image(key, size=100)
                    cv2.imwrite(str(root / "loose_crop" / name), img[..., ::-1])
                    faces.append(f"{name} {tid} {mid}")
                    kp = " ".join(f"{v:.1f}" for v in rng.uniform(30, 70, 10))
                    pts.append(f"{name} {kp} {rng.uniform(0.5, 1):.3f}")
    tids = sorted(tid_subject)
    pairs = [(a, b, int(tid_subject[a] == tid_subject[b])) for i, a in enumerate(tids) for b in tids[i + 1 :]]
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("\n".join(faces) + "\n")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(pts) + "\n")
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("\n".join(f"{a} {b} {y}" for a, b, y in pairs))
    return np.array(codebook), tid_subject, pairs


def _reference_templates(root, codebook, weights: bool):
    """Loop-based reference of media pooling from the meta text files."""
    from collections import defaultdict

    emb = codebook / np.linalg.norm(codebook, axis=1, keepdims=True)
    det = {
        ln.split()[0]: float(ln.split()[-1])
        for ln in (root / "meta" / "ijbc_name_5pts_score.txt").read_text().splitlines()
    }
    groups = defaultdict(lambda: defaultdict(list))
    for ln in (root / "meta" / "ijbc_face_tid_mid.txt").read_text().splitlines():
        name, t, m = ln.split()
        key = int(name.split(".")[0])
        groups[int(t)][int(m)].append(emb[key] * (det[name] if weights else 1.0))
    out = {}
    for t, media in groups.items():
        v = sum(np.mean(faces, axis=0) for faces in media.values())
        out[t] = v / np.linalg.norm(v)
    return out


@pytest.mark.parametrize("weights", [False, True])
def test_evaluate_ijb_11_matches_independent_computation(tmp_path, weights):
    rng = np.random.default_rng(0)
    codebook, tid_subject, pairs = _make_ijb(tmp_path, rng)
    emb = CodebookEmbedder(codebook)
    summary, ident = ijb.evaluate_ijb(
        tmp_path, emb, aligner=crop_align, batch_size=7, use_detector_score=weights, fars=(1e-2, 1e-1)
    )
    assert ident is None  # no 1:N lists
    ref = _reference_templates(tmp_path, codebook, weights)
    scores = np.array([ref[a] @ ref[b] for a, b, _ in pairs])
    labels = np.array([y for _, _, y in pairs], bool)
    # expected TAR from a brute-force ROC walk, independent of metrics.roc_curve
    for far, key in ((1e-2, "1e-02"), (1e-1, "1e-01")):
        assert summary.tar_at_far[key] == pytest.approx(tar_at_far(roc_curve(scores, labels), far)[0])
    neg = np.sort(scores[~labels])[::-1]
    k = int(np.floor(0.1 * neg.size))
    assert summary.operating_points[1].tar == pytest.approx(np.mean(scores[labels] > neg[k]))
    assert summary.n_pairs == len(pairs) and summary.extra["n_templates"] == len(tid_subject)


def test_ijb_1n(tmp_path):
    rng = np.random.default_rng(1)
    codebook, tid_subject, _ = _make_ijb(tmp_path, rng, n_subjects=8, templates_per_subject=2)
    tids = sorted(tid_subject)
    gallery = [t for t in tids if tids.index(t) % 2 == 0 and tid_subject[t] < 6]  # subjects 6,7 unmated
    probes = [t for t in tids if t not in gallery]
    meta = tmp_path / "meta"
    for fname, ts in (("ijbc_1N_gallery_G1.csv", gallery), ("ijbc_1N_probe_mixed.csv", probes)):
        rows = ["TEMPLATE_ID,SUBJECT_ID,FILENAME"] + [f"{t},{tid_subject[t]},x.jpg" for t in ts for _ in (0, 1)]
        (meta / fname).write_text("\n".join(rows) + "\n")
    summary, ident = ijb.evaluate_ijb(tmp_path, CodebookEmbedder(codebook), aligner=crop_align, fars=(0.1,))
    g1 = ident["G1"]
    assert g1["n_gallery"] == len(gallery) and g1["n_probes"] == len(probes)
    ref = _reference_templates(tmp_path, codebook, False)
    mated = [p for p in probes if tid_subject[p] < 6]
    assert g1["n_mated_probes"] == len(mated)
    hits = 0
    for p in mated:
        sims = {g: ref[p] @ ref[g] for g in gallery}
        best = max(sims, key=sims.get)
        hits += tid_subject[best] == tid_subject[p]
    assert g1["cmc"]["rank1"] == pytest.approx(hits / len(mated))
    assert "tpir_at_fpir" in g1


def test_ijb_meta_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        ijb.load_meta(tmp_path)
    with pytest.raises(InputError, match="IJBB"):
        ijb.load_meta(tmp_path, "IJBX")
    rng = np.random.default_rng(2)
    _make_ijb(tmp_path, rng, n_subjects=2, templates_per_subject=1)
    p = tmp_path / "meta" / "ijbc_name_5pts_score.txt"
    p.write_text("\n".join(p.read_text().splitlines()[1:]))
    with pytest.raises(InputError, match="no landmarks"):
        ijb.load_meta(tmp_path)
