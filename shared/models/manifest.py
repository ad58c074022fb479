"""Every model Argus can run, declared once: where it comes from, what it must hash to, what it expects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InputSpec:
    """What the network's first input expects, so callers and docs need not guess."""

    name: str
    shape: tuple[int | str, ...]
    layout: str
    colour: str
    value_range: str


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

MANIFEST: dict[str, ModelSpec] = {spec.name: spec for spec in (YOLOX_NANO, YUNET, MOBILEFACENET)}
