"""ImageFolder, packing, augmentation, normalisation, the resumable sampler, dataset info, list files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.train.data import (  # noqa: E402
    ArrayDataset,
    Augment,
    ImageFolderDataset,
    RecordIODataset,
    ResumableSampler,
    dataset_info,
    open_dataset,
    pack_folder,
    to_tensor,
)
from arcface.train.synthetic import make_identities, write_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    imgs, labels = make_identities(4, 3, seed=3)
    labels = labels.copy()
    root = tmp_path_factory.mktemp("folder")
    write_image_folder(root, imgs[:11], labels[:11])  # identity 3 has only 2 images
    return root


def test_image_folder_labels_follow_sorted_folders(folder):
    ds = ImageFolderDataset(folder)
    assert ds.classes == ["id_00000", "id_00001", "id_00002", "id_00003"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert ds.keys[4] == "id_00001/0001.jpg"
    x, y = ds[4]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 112, 112) and y == 1
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_pack_then_read_gives_identical_images(folder, tmp_path):
    pack_folder(folder, tmp_path / "train", progress=False)
    a, b = ImageFolderDataset(folder), open_dataset(tmp_path / "train.rec")
    assert isinstance(b, RecordIODataset)
    assert b.labels.tolist() == a.labels.tolist()
    for i in (0, 5, 10):
        np.testing.assert_array_equal(a.load_rgb(i), b.load_rgb(i))


def test_dataset_info_counts(folder):
    info = dataset_info(folder)
    assert info["images"] == 11 and info["identities"] == 4
    assert info["images_per_identity"]["min"] == 2 and info["images_per_identity"]["max"] == 3
    assert info["histogram"]["2-4"] == 4 and sum(info["histogram"].values()) == 4


def test_list_file_restricts_and_relabels(folder, tmp_path):
    lst = tmp_path / "keep.lst"
    lst.write_text("id_00002/0000.jpg\t0\nid_00000/0001.jpg\t1\n")
    ds = ImageFolderDataset(folder, list_file=str(lst))
    assert ds.keys == ["id_00002/0000.jpg", "id_00000/0001.jpg"] and ds.labels.tolist() == [0, 1]
    lst.write_text("nope.jpg\t0\n")
    with pytest.raises(InputError, match="not in the dataset"):
        ImageFolderDataset(folder, list_file=str(lst))


def test_normalisation_follows_the_arcface_spec():
    img = np.zeros((112, 112, 3), np.uint8)
    img[..., 0] = 255
    img[0, 0] = (0, 51, 204)
    x = to_tensor(img)
    assert float(x[0, 1, 1]) == 1.0 and float(x[1, 1, 1]) == -1.0  # R channel first, (x - 127.5) / 127.5
    assert x[:, 0, 0].tolist() == pytest.approx([-1.0, (51 - 127.5) / 127.5, (204 - 127.5) / 127.5])


def test_augment_flip_and_determinism():
    rng_img = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    flipped = Augment(flip=1.0)(rng_img, np.random.default_rng(1))
    np.testing.assert_array_equal(flipped, rng_img[:, ::-1])
    aug = Augment(flip=0.5, color=0.3, blur=0.5, crop=0.1)
    a = aug(rng_img, np.random.default_rng(42))
    b = aug(rng_img, np.random.default_rng(42))
    c = aug(rng_img, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert a.shape == rng_img.shape and a.dtype == np.uint8 and not np.array_equal(a, c)
    ds = ArrayDataset(rng_img[None].repeat(2, 0), np.array([0, 1]), aug)
    torch.testing.assert_close(ds[(0, 7)][0], ds[(0, 7)][0], rtol=0, atol=0)
    torch.testing.assert_close(ds[0][0], to_tensor(rng_img), rtol=0, atol=0)  # no seed: no augmentation


def test_sampler_shards_are_a_disjoint_cover_and_resume_mid_epoch():
    n, world = 103, 4
    shards = []
    for r in range(world):
        s = ResumableSampler(n, seed=5, rank=r, world_size=world)
        s.set_epoch(2)
        shards.append([i for i, _ in s])
    flat = np.concatenate(shards)
    assert all(len(x) == n // world for x in shards)
    assert len(set(flat.tolist())) == len(flat) == (n // world) * world
    one = ResumableSampler(n, seed=5)
    one.set_epoch(2)
    perm = [i for i, _ in one]
    # Positions r, r + world, ... of the epoch permutation, so a global batch is a contiguous block.
    assert shards[1] == perm[1 : (n // world) * world : world]
    s = ResumableSampler(n, seed=5, rank=2, world_size=world)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=10)
    assert list(s) == full[10:] and len(s) == len(full) - 10
    s.set_epoch(3)
    assert [i for i, _ in s] != [i for i, _ in full]


def test_missing_dataset_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "missing")
