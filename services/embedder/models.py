"""The face-embedding networks: each with the crop it was trained on and the input it expects.

Every network is cut from the same five landmarks, each onto its own template, and gives one L2-normalised vector
per face. A network is looked up by its manifest name in EMBEDDING_MODELS.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from argus.alignment import ALIGNED_SIZE, TEMPLATE_112, align_to
from argus.models.manifest import DLIB_RESNET, HSE_FACERES, MOBILEFACENET
from argus.models.runtime import OnnxModel


class EmbeddingModel(OnnxModel):
    """A face-embedding network; subclasses give its crop (template and size) and its input tensor."""

    template: ClassVar[np.ndarray]  # where the five landmarks land in the crop, in crop pixels
    crop_size: ClassVar[int]
    channels_last: ClassVar[bool]  # HWC input (else CHW): decides which axis a mirror image flips

    def crop(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The network's crop (BGR uint8) of the face with these landmarks."""
        return align_to(image, landmarks, self.template, self.crop_size)

    def to_input(self, crop_bgr: np.ndarray) -> np.ndarray:
        """One crop as the network's input tensor, without the batch axis."""
        raise NotImplementedError

    def mirrored(self, tensor: np.ndarray) -> np.ndarray:
        """The input of the horizontally mirrored face."""
        width_axis = 1 if self.channels_last else 2
        return np.ascontiguousarray(np.flip(tensor, axis=width_axis))

    def warmup_input(self) -> np.ndarray:
        return self.to_input(np.zeros((self.crop_size, self.crop_size, 3), dtype=np.uint8))[None]

    @property
    def embedding_output(self) -> int:
        """Which output is the embedding: the one named so, else the first (some networks add other heads)."""
        return self.output_names.index("embedding") if "embedding" in self.output_names else 0

    @property
    def dimension(self) -> int:
        return int(self.session.get_outputs()[self.embedding_output].shape[-1])


class MobileFaceNet(EmbeddingModel):
    """MobileFaceNet (Apache-2.0): ArcFace 112x112 crop, RGB scaled to about -1..1, 128-d."""

    spec = MOBILEFACENET
    template = TEMPLATE_112
    crop_size = ALIGNED_SIZE
    channels_last = False

    def to_input(self, crop_bgr: np.ndarray) -> np.ndarray:
        rgb = crop_bgr[:, :, ::-1].astype(np.float32)
        return np.ascontiguousarray(((rgb - 127.5) / 128.0).transpose(2, 0, 1))


# Median positions of the detector's five landmarks inside dlib's own 150x150 face chips (padding 0.25), measured
# on LFW's development images; fitting to them reproduces the chip geometry the network was trained on.
DLIB_CHIP_TEMPLATE = np.array(
    [[46.362, 43.944], [102.332, 44.547], [74.410, 76.774], [50.416, 101.346], [99.044, 101.692]], dtype=np.float64
)


class DlibResNet(EmbeddingModel):
    """dlib's face-recognition ResNet (CC0): 150x150 chip, RGB 0-255 (the mean and scale are inside the graph)."""

    spec = DLIB_RESNET
    template = DLIB_CHIP_TEMPLATE
    crop_size = 150
    channels_last = True

    def to_input(self, crop_bgr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(crop_bgr[:, :, ::-1], dtype=np.float32)


# HSE FaceRes was trained on box crops (the detector box, 10% margin each side, 224 px); the 112 template with a
# 10% pad each side stands in for that box, so the crop is cut from landmarks alone like the others.
FACERES_TEMPLATE = (TEMPLATE_112 / ALIGNED_SIZE * 0.8 + 0.1) * 224
FACERES_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


class HseFaceRes(EmbeddingModel):
    """HSE FaceRes (MobileNet on VGGFace2, Apache-2.0): 224 crop, BGR minus the ImageNet means, 1024-d."""

    spec = HSE_FACERES
    template = FACERES_TEMPLATE
    crop_size = 224
    channels_last = True

    def to_input(self, crop_bgr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(crop_bgr.astype(np.float32) - FACERES_MEAN_BGR)


EMBEDDING_MODELS: dict[str, type[EmbeddingModel]] = {
    model.spec.name: model for model in (MobileFaceNet, DlibResNet, HseFaceRes)
}
