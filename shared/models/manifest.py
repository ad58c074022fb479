"""Every model Argus can run, declared once: where it comes from, what it must hash to, what it expects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class InputSpec:
    """What the network's first input expects, so callers and docs need not guess."""

    name: str
    shape: tuple[int | str, ...]
    layout: str
    colour: str
    value_range: str


@dataclass(frozen=True)
class ArchiveMember:
    """A file inside a registry package, pinned by hash so a re-published package cannot swap it."""

    path: str  # POSIX path inside the archive, e.g. "package/models/faceres.json"
    sha256: str


@dataclass(frozen=True)
class RegistrySource:
    """A model shipped inside a PyPI or npm package: fetched with the ordinary client (pip / npm), then turned into
    ONNX by a converter the project owns (see argus.models.converters). Every byte on the way is pinned by sha256."""

    ecosystem: Literal["pypi", "npm"]
    package: str
    version: str
    archive_sha256: str  # of the downloaded sdist (pypi) or tarball (npm)
    members: tuple[ArchiveMember, ...]
    converter: str  # a name in argus.models.converters.CONVERTERS; it gets the members in this order

    def __post_init__(self) -> None:
        if self.ecosystem not in ("pypi", "npm"):
            raise ValueError(f"unknown package ecosystem {self.ecosystem!r}: expected 'pypi' or 'npm'")

    @property
    def label(self) -> str:
        """How a person would name the package: `pypi face_recognition_models==0.3.0`, `npm @scope/name@1.2.3`."""
        if self.ecosystem == "pypi":
            return f"pypi {self.package}=={self.version}"
        return f"npm {self.package}@{self.version}"


@dataclass(frozen=True)
class QuantizedSource:
    """An int8 build of another manifest model, made by the store itself (argus.models.quantize): ONNX Runtime's
    static QDQ quantiser over the base model's verified file, with the activation ranges committed beside the code
    (measured once by `argus models calibrate`). No calibration data is needed to build it, so every machine with
    this quantiser version writes the same bytes, and the spec's sha256 pins them."""

    base: str  # manifest name of the fp32 model
    ranges: str  # file name in argus/models/calibration/
    ranges_sha256: str
    quantiser_version: str  # the onnxruntime version whose quantiser writes the pinned bytes
    fp32_nodes: tuple[str, ...]  # nodes of the base graph left in fp32
    calibration_set: str  # what the ranges were measured on, for people


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    task: str
    file: str  # path inside the model store, laid out like the mirror
    url: str
    sha256: str
    size: int
    licence: str
    input: InputSpec
    notes: str = ""
    tags: tuple[str, ...] = field(default=())
    registry: RegistrySource | None = None  # a package the model can be made from when no mirror holds it
    quantized: QuantizedSource | None = None  # set on an int8 build: the fp32 model it is made from, and how

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


YOLOX_NANO = ModelSpec(
    name="yolox-nano",
    version="0.1.1rc0",
    task="object-detection",
    file="object_detection/yolox_nano.onnx",
    url=(
        "https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/"
        "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx"
    ),
    sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
    size=3_660_092,
    licence="Apache-2.0",
    input=InputSpec("images", (1, 3, 416, 416), "NCHW", "BGR", "0-255, letterbox top-left, pad 114"),
    notes="COCO-80; raw grid output 1x3549x85 (strides 8/16/32); the batch is made dynamic at load time.",
)

YUNET = ModelSpec(
    name="yunet-s",
    version="2023mar-dynamic",
    task="face-detection",
    file="face_detection/yunet_s_dynamic.onnx",
    url=(
        "https://github.com/ShiqiYu/libfacedetection.train/raw/"
        "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_dynamic.onnx"
    ),
    sha256="daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
    size=237_823,
    licence="MIT",
    input=InputSpec("input", ("N", 3, "H", "W"), "NCHW", "BGR", "0-255; H and W multiples of 32"),
    notes="Outputs cls/obj/bbox/kps for strides 8/16/32; five landmarks.",
)

MOBILEFACENET = ModelSpec(
    name="mobilefacenet",
    version="foamliu-1.0",
    task="face-embedding",
    file="face_recognition/mobilefacenet_foamliu_128d.onnx",
    url=(
        "https://github.com/hyeonjunchoi/AutoTracking_RassibarryPi/raw/"
        "414044f3ccb702a47c1f270a748d425ba34e335a/mobilefacenet.onnx"
    ),
    sha256="0c9ad2a83969fc82155706f7020e6926b4a1a90a5476fff4a5588dfe207f64a4",
    size=3_998_463,
    licence="Apache-2.0",
    input=InputSpec("input", ("N", 3, 112, 112), "NCHW", "RGB", "(x - 127.5) / 128, aligned 112x112"),
    notes="128-d, not normalised: L2-normalise before comparing.",
)

# Style transfer. These files are derived from upstream files (graphs re-wired, int8/fp16 weights turned into fp32),
# so no upstream URL serves them: they come from a mirror only (ARGUS_MODELS_MIRROR), whose MODELS.md tells how.

FAST_STYLE_LICENCE = "unclear (upstream has no licence; retrained from BSD-3-Clause pytorch/examples)"
FAST_STYLE_SOURCE = (
    "Derived from gnsmrky/pytorch-fast-neural-style-for-web @ e1c4caf394cc128a8215a9148ddc934d489b7864 : "
    "saved_onnx_nc16/{style}_nc16_256x256_onnxjs013.onnx (fixed 256x256), rebuilt with dynamic H/W."
)


def _fast_style(style: str, sha256: str) -> ModelSpec:
    return ModelSpec(
        name=f"style-{style}",
        version="nc16-dynamic",
        task="style-transfer",
        file=f"style_transfer/fast_neural_style/{style}_nc16_dynamic.onnx",
        url="",
        sha256=sha256,
        size=1_705_551,
        licence=FAST_STYLE_LICENCE,
        input=InputSpec("input", (1, 3, "H", "W"), "NCHW", "RGB", "0-255; H and W multiples of 4"),
        notes=FAST_STYLE_SOURCE.format(style=style) + " Output RGB roughly 0-255 with overshoot: clip.",
        tags=("style", "fixed-style"),
    )


STYLE_CANDY = _fast_style("candy", "1879182494498ee3d065200eb36f863eb254860eb93c349a616b70a8f9247463")
STYLE_MOSAIC = _fast_style("mosaic", "156b6db982583b90dd3b379e17054374c89ae6100c947d60a203ca55c5e5aa4b")
STYLE_RAIN_PRINCESS = _fast_style("rain-princess", "79b4b77354d9e45ec46c98c8299b152fc2a4ea105660bf5be46f9297d8abb782")
STYLE_UDNIE = _fast_style("udnie", "9148a8d7fc4e2f9726914aada93132b47b31a6135bc5d74ae0f3f8a3174cc841")
FAST_STYLES = (STYLE_CANDY, STYLE_MOSAIC, STYLE_RAIN_PRINCESS, STYLE_UDNIE)

MAGENTA_STYLE_PREDICT = ModelSpec(
    name="magenta-style-predict",
    version="v1-256-float32",
    task="style-prediction",
    file="style_transfer/magenta_arbitrary/magenta_style_predict_float32.onnx",
    url="",
    sha256="160efe07e4cd416d6d6cfb51278dcd64e18ed5b25b9c4ca31471bc132b082579",
    size=9_351_821,
    licence="Apache-2.0",
    input=InputSpec("style_image", (1, 256, 256, 3), "NHWC", "RGB", "0-1; centre-cropped square resized to 256"),
    notes=(
        "Magenta arbitrary-image-stylization-v1-256 style predictor; derived (int8 weights dequantized) from "
        "style_predict_quantized_256.tflite (terryky/tflite_gles_app @ bfc2015a6d1234deebc9574798b175a6d1b2afc2). "
        "Output style_bottleneck [1,1,1,100]."
    ),
    tags=("style", "arbitrary-style"),
)

MAGENTA_STYLE_TRANSFER = ModelSpec(
    name="magenta-style-transfer",
    version="v1-384-float32",
    task="style-transfer",
    file="style_transfer/magenta_arbitrary/magenta_style_transfer_float32.onnx",
    url="",
    sha256="24a473a7d0fa2b7c4d424467f25f2a37f5f5507cab90033eadee9ce049b24f6a",
    size=729_144,
    licence="Apache-2.0",
    input=InputSpec("content_image", (1, "H", "W", 3), "NHWC", "RGB", "0-1; H and W multiples of 4"),
    notes=(
        "Magenta arbitrary-image-stylization-v1-256 transformer; derived (fp16 weights cast to fp32) from "
        "style_transfer_f16_384.tflite (same source as magenta-style-predict). Second input style_bottleneck "
        "[1,1,1,100]; output stylized_image NHWC RGB 0-1."
    ),
    tags=("style", "arbitrary-style"),
)

# Face embedders made from weights shipped in registry packages (see the mirror's candidates/CANDIDATES.md). No URL
# serves the converted files: they come from the mirror, or from the package through the project's own converter.

DLIB_RESNET = ModelSpec(
    name="dlib-resnet",
    version="v1",
    task="face-embedding",
    file="candidates/dlib_face_recognition_resnet_v1.onnx",
    url="",
    sha256="8c573cefb6dc002b1d0d865625c45e7998e1e3976361353dd6ab1638d5966ce3",
    size=22_443_197,
    licence="CC0-1.0",
    input=InputSpec("input", ("N", 150, 150, 3), "NHWC", "RGB", "0-255; 150x150 chip (normalisation inside the graph)"),
    notes=(
        "128-d raw dlib descriptor, not normalised: L2-normalise before comparing. CC0 weights by Davis King, from "
        "the face_recognition_models package, converted from dlib's .dat by argus.models.dlib_format."
    ),
    registry=RegistrySource(
        ecosystem="pypi",
        package="face_recognition_models",
        version="0.3.0",
        archive_sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
        members=(
            ArchiveMember(
                "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            ),
        ),
        converter="dlib-dat",
    ),
)

# An int8 build of the dlib ResNet, run in its place when ARGUS_INT8 is on. It gives the same network's vectors to
# within 1 - cosine 5.5e-4, so it answers as dlib-resnet@v1: how that network runs, not another network. Measured on
# 2 cores, 1 thread: 2.6 vs 6.1 ms for a face and its mirror; it costs 0.06 pt of LFW accuracy and 0.2 pt of
# DIR@FAR 1% on the larger galleries (the README's Accuracy section), which is why it is not the default.
DLIB_RESNET_INT8 = ModelSpec(
    name="dlib-resnet-int8",
    version="v1-qdq",
    task="face-embedding",
    file="derived/dlib_face_recognition_resnet_v1_int8_qdq.onnx",
    url="",
    sha256="d3cec6c87ffdd45a6402235fca450d60bfeeb5aeb91acb3b82b5fe036145c26c",
    size=5_825_561,
    licence=DLIB_RESNET.licence,
    input=DLIB_RESNET.input,
    notes=(
        "dlib-resnet@v1 with int8 weights per output channel (7-bit range) and uint8 activations, static QDQ; run in "
        "its place on the CPU unless ARGUS_INT8 is off."
    ),
    quantized=QuantizedSource(
        base=DLIB_RESNET.name,
        ranges="dlib-resnet-v1.json",
        ranges_sha256="1d17ed42645c5a9c69711f02bd6a3b10ecc644daf64f34f56faae3c220f5be8e",
        quantiser_version="1.31.1",
        fp32_nodes=("fc",),  # the final 256x128 MatMul: a third less error for no measurable time
        calibration_set=(
            "LFW deep-funneled, the images of pairsDevTest.txt that pairs.txt does not use (no test image), each "
            "face found by yunet-s cut to dlib's chip, with its mirror"
        ),
    ),
)

HSE_FACERES = ModelSpec(
    name="hse-faceres",
    version="mobilenet224-vggface2",
    task="face-embedding",
    file="candidates/hse_faceres_mobilenet224_vggface2.onnx",
    url="",
    sha256="b389240dbced90e52f6a064699f609cbad0b58353f483fdcc1b2ce148e057fef",
    size=13_999_738,
    licence="Apache-2.0",
    input=InputSpec("input", ("N", 224, 224, 3), "NHWC", "BGR", "minus (103.939, 116.779, 123.68); square box crop"),
    notes=(
        "1024-d embedding (L2-normalise it) plus gender and age heads. HSE-asavchenko/HSE_FaceRec_tf (MobileNet on "
        "VGGFace2), as shipped in TF.js form by the @vladmandic/human package; converted by argus.models.tfjs_format."
    ),
    registry=RegistrySource(
        ecosystem="npm",
        package="@vladmandic/human",
        version="3.3.6",
        archive_sha256="425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7",
        members=(
            ArchiveMember(
                "package/models/faceres.json", "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df"
            ),
            ArchiveMember(
                "package/models/faceres.bin", "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"
            ),
        ),
        converter="tfjs-faceres",
    ),
)

# Passive liveness (face anti-spoofing): Minivision's Silent-Face-Anti-Spoofing pair (Apache-2.0), exported to ONNX
# from the upstream PyTorch files (the mirror's liveness/LIVENESS.md tells how, and what was checked). No URL serves
# the exported files: they come from the mirror.

MINIFASNET_SOURCE = (
    "minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04ad78778917853b25c778acef6d5626d15 : "
    "resources/anti_spoof_models/{file}, exported to ONNX (opset 17, dynamic batch)."
)


def _minifasnet(name: str, file: str, upstream: str, sha256: str, size: int, scale: float) -> ModelSpec:
    return ModelSpec(
        name=name,
        version=f"80x80-scale{scale}",
        task="face-liveness",
        file=f"liveness/{file}",
        url="",
        sha256=sha256,
        size=size,
        licence="Apache-2.0",
        input=InputSpec("input", ("N", 3, 80, 80), "NCHW", "BGR", f"0-255; face box x {scale} crop, squashed to 80"),
        notes=MINIFASNET_SOURCE.format(file=upstream) + " Logits of 2D spoof / real / 3D spoof: use real or not.",
        tags=("liveness",),
    )


MINIFASNET_V2 = _minifasnet(
    "minifasnet-v2",
    "minifasnet_v2_80x80_scale2.7.onnx",
    "2.7_80x80_MiniFASNetV2.pth",
    "7cf22458030ec62494688c9ad47e1ed8dac9c14b01c1c4a5c91fb2c6c9296d4a",
    1_744_448,
    2.7,
)
MINIFASNET_V1SE = _minifasnet(
    "minifasnet-v1se",
    "minifasnet_v1se_80x80_scale4.0.onnx",
    "4_0_0_80x80_MiniFASNetV1SE.pth",
    "0a7fe54809521f1110241a1a8be44f4bec9652a8c215eea221c0d87105ab474e",
    1_743_616,
    4.0,
)
LIVENESS_MODELS = (MINIFASNET_V2, MINIFASNET_V1SE)

MANIFEST: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        YOLOX_NANO,
        YUNET,
        MOBILEFACENET,
        *FAST_STYLES,
        MAGENTA_STYLE_PREDICT,
        MAGENTA_STYLE_TRANSFER,
        DLIB_RESNET,
        DLIB_RESNET_INT8,
        HSE_FACERES,
        *LIVENESS_MODELS,
    )
}

# The int8 build of each model that has one, by the fp32 model's name.
INT8_BUILDS: dict[str, ModelSpec] = {
    spec.quantized.base: spec for spec in MANIFEST.values() if spec.quantized is not None
}
