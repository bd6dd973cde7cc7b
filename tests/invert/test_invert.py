import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.invert import bn_prior, has_folded_bn, invert  # noqa: E402


@pytest.fixture(scope="module")
def setup(analyzer, wheel_images):
    from arcface.nn.convert import load_onnx_recognizer

    torch.manual_seed(0)
    model = load_onnx_recognizer(analyzer.pack.recognizer)
    face = analyzer.analyze(wheel_images["yaoming.jpg"], with_crops=True)[0]
    crops = np.stack([f.crop for f in analyzer.analyze(wheel_images["gdp.jpg"], with_crops=True)])
    return model, face, crops


def test_prior_is_measured_without_changing_the_model(setup):
    model, face, crops = setup
    assert has_folded_bn(model)
    before = model(torch.from_numpy(face.crop[None].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1)).detach()
    prior = bn_prior(model, crops)
    after = model(torch.from_numpy(face.crop[None].astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1)).detach()
    torch.testing.assert_close(before, after)
    assert len(prior) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # The first BatchNorm2d's input is the first conv's output: check its statistics by hand.
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.from_numpy(crops.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1)
    with torch.no_grad():
        a = first_conv(x)
    torch.testing.assert_close(prior[0][0], a.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(prior[0][1], a.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4, atol=1e-4)


def test_running_stats_are_the_prior_of_trained_models():
    from arcface.nn.backbones import create_model

    m = create_model("iresnet18").eval()
    bn = next(b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    bn.running_mean.fill_(0.5)
    assert not has_folded_bn(m)
    assert torch.equal(bn_prior(m)[0][0], bn.running_mean)


def test_inversion_recovers_identity_and_prior_lowers_bn_distance(setup, analyzer):
    model, face, crops = setup
    prior = bn_prior(model, crops)
    with_prior = invert(face.embedding, model, steps=40, lr=0.1, w_bn=1.0, prior=prior, seed=1)
    without = invert(face.embedding, model, steps=40, lr=0.1, w_bn=0.0, prior=prior, seed=1)
    assert with_prior.image.shape == (112, 112, 3) and with_prior.image.dtype == np.uint8
    first, last = with_prior.history[0], with_prior.history[-1]
    assert last[1] > first[1] + 0.4  # identity cosine rose from ~0
    # The deployed ONNX model sees the same identity in the uint8 image.
    onnx_cos = float(analyzer.embed_crops(with_prior.image[None])[0] @ face.embedding)
    assert abs(onnx_cos - with_prior.cosine) < 0.05 and onnx_cos > 0.4
    assert last[2] < without.history[-1][2]  # the BatchNorm prior pulls statistics toward real faces


def test_bad_embedding(setup):
    model, _, _ = setup
    with pytest.raises(InputError):
        invert(np.zeros(512, np.float32), model, steps=1)


def test_cli_invert_from_npy(setup, tmp_path, capsys):
    import json

    from arcface.cli import main

    _, face, _ = setup
    np.save(tmp_path / "e.npy", face.embedding)
    out = tmp_path / "face.png"
    assert main(["invert", str(tmp_path / "e.npy"), str(out), "--steps", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert out.is_file() and -1 <= res["cosine_onnx"] <= 1
    np.save(tmp_path / "bad.npy", np.ones(3))
    assert main(["invert", str(tmp_path / "bad.npy"), str(out), "--steps", "1"]) == 2
