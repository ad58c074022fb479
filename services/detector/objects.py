"""COCO-80 object detection with YOLOX-nano: letterbox, raw grid decode, class-wise NMS."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from argus.batching import DynamicBatcher
from argus.boxes import Box, as_box, batched_nms
from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import letterbox
from argus.models.manifest import YOLOX_NANO
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
_CLASS_IDS = {name: index for index, name in enumerate(COCO_CLASSES)}

INPUT_SIZE = 416
PAD_VALUE = 114
STRIDES = (8, 16, 32)
PRE_NMS_TOP_K = 3000  # candidates kept before NMS; bounds its cost at very low score thresholds


@dataclass(frozen=True)
class DetectedObject:
    class_id: int
    score: float
    box: Box

    @property
    def class_name(self) -> str:
        return COCO_CLASSES[self.class_id]


@dataclass(frozen=True)
class ObjectOptions:
    score_threshold: float
    iou_threshold: float
    max_detections: int
    class_ids: frozenset[int] | None = None  # None: every class

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectOptions:
        return cls(settings.object_score_threshold, settings.object_nms_iou, settings.max_detections)


def resolve_classes(names: list[str], ids: list[int]) -> frozenset[int] | None:
    """The class filter from names and ids combined; InvalidInput names what is unknown."""
    if not names and not ids:
        return None
    unknown_names = [name for name in names if name.strip().lower() not in _CLASS_IDS]
    if unknown_names:
        raise InvalidInput(f"unknown class name(s) {unknown_names}; use COCO names such as 'person', 'car', 'dog'")
    bad_ids = [i for i in ids if not 0 <= i < len(COCO_CLASSES)]
    if bad_ids:
        raise InvalidInput(f"class id(s) {bad_ids} out of range; ids run from 0 to {len(COCO_CLASSES) - 1}")
    return frozenset(_CLASS_IDS[name.strip().lower()] for name in names) | frozenset(ids)


def make_grid(height: int, width: int, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets (A, 2) as (col, row) and strides (A, 1), row-major per stride, strides in order."""
    cells, cell_strides = [], []
    for stride in strides:
        rows, cols = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        cell_strides.append(np.full((rows * cols, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(cell_strides).astype(np.float32)


def decode_boxes(raw: np.ndarray, cells: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Raw (A, 4) offsets and log sizes to (A, 4) x1, y1, x2, y2 in input pixels."""
    centres = (raw[:, :2] + cells) * strides
    sizes = np.exp(raw[:, 2:4]) * strides
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


def postprocess(
    raw: np.ndarray,
    cells: np.ndarray,
    strides: np.ndarray,
    scale: float,
    image_size: tuple[int, int],
    options: ObjectOptions,
) -> list[DetectedObject]:
    """One image's (A, 85) output to detections in source-image pixels.

    Every (box, class) pair scoring obj x cls above the threshold is a candidate, so one box may carry two
    classes; NMS then runs per class. Both factors are probabilities, so a box whose objectness alone is not above
    the threshold has no candidate: the class scores are computed for the others only (a few of 3549 cells).
    """
    rows = np.nonzero(raw[:, 4] > options.score_threshold)[0]
    raw, cells, strides = raw[rows], cells[rows], strides[rows]
    scores = raw[:, 4:5] * raw[:, 5:]
    if options.class_ids is not None:
        mask = np.zeros(scores.shape[1], dtype=bool)
        mask[list(options.class_ids)] = True
        scores = np.where(mask[None, :], scores, 0)
    box_index, class_index = np.nonzero(scores > options.score_threshold)
    if box_index.size == 0:
        return []
    candidate_scores = scores[box_index, class_index]
    if candidate_scores.size > PRE_NMS_TOP_K:
        top = np.argpartition(-candidate_scores, PRE_NMS_TOP_K)[:PRE_NMS_TOP_K]
        box_index, class_index, candidate_scores = box_index[top], class_index[top], candidate_scores[top]
    boxes = decode_boxes(raw[box_index, :4], cells[box_index], strides[box_index]) / scale
    width, height = image_size
    boxes = np.clip(boxes, 0, [width, height, width, height])
    keep = batched_nms(boxes, candidate_scores, class_index, options.iou_threshold)[: options.max_detections]
    return [DetectedObject(int(class_index[i]), float(candidate_scores[i]), as_box(boxes[i])) for i in keep]


@dataclass(frozen=True)
class PendingObjects:
    """An image's queued forward pass, with what postprocess needs of the image: its scale and (width, height)."""

    outputs: Future[list[np.ndarray]]
    scale: float
    image_size: tuple[int, int]


class YoloxModel(OnnxModel):
    spec = YOLOX_NANO

    def prepare_graph(self, graph: onnx.ModelProto) -> onnx.ModelProto:
        return make_batch_dynamic(graph)

    def warmup_input(self) -> np.ndarray:
        return np.full((1, 3, INPUT_SIZE, INPUT_SIZE), PAD_VALUE, dtype=np.float32)


def make_batch_dynamic(graph: onnx.ModelProto) -> onnx.ModelProto:
    """The YOLOX export hard-codes batch 1 in the Reshape of each head (`[1, 85, -1]`).

    Rewriting those shape constants to `[0, 85, -1]` (0 copies the input's batch) and naming the batch axis of the
    graph's input and output lets one forward pass take many images.
    """
    constants = {node.output[0]: node for node in graph.graph.node if node.op_type == "Constant"}
    initializers = {init.name: init for init in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type != "Reshape":
            continue
        shape_name = node.input[1]
        if shape_name in constants:
            tensor = constants[shape_name].attribute[0].t
        elif shape_name in initializers:
            tensor = initializers[shape_name]
        else:
            continue
        shape = numpy_helper.to_array(tensor)
        if shape.ndim == 1 and shape.size == 3 and shape[0] == 1:
            tensor.CopyFrom(numpy_helper.from_array(np.array([0, *shape[1:]], dtype=shape.dtype), tensor.name))
    for value in (*graph.graph.input, *graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.graph.value_info[:]
    return graph


class ObjectDetector:
    """Detects COCO objects in BGR images; forward passes are shared with concurrent callers."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.model = YoloxModel(store, settings)
        self.model.load()  # here, so a missing or corrupt file fails the service at start
        self.cells, self.strides = make_grid(INPUT_SIZE, INPUT_SIZE)
        self.batcher = DynamicBatcher.for_model(self.model, settings)
        self.defaults = ObjectOptions.from_settings(settings)

    @staticmethod
    def preprocess(image: np.ndarray) -> tuple[np.ndarray, float]:
        boxed = letterbox(image, INPUT_SIZE, INPUT_SIZE, PAD_VALUE)
        return np.ascontiguousarray(boxed.image.transpose(2, 0, 1), dtype=np.float32), boxed.scale

    def submit(self, image: np.ndarray) -> PendingObjects:
        """Queues the image's forward pass; what it keeps is the model-size input, not the image."""
        tensor, scale = self.preprocess(image)
        return PendingObjects(self.batcher.submit(tensor), scale, (image.shape[1], image.shape[0]))

    def collect(self, pending: PendingObjects, options: ObjectOptions) -> list[DetectedObject]:
        (raw,) = pending.outputs.result()
        return postprocess(raw, self.cells, self.strides, pending.scale, pending.image_size, options)

    def detect(self, images: list[np.ndarray], options: ObjectOptions) -> list[list[DetectedObject]]:
        pending = [self.submit(image) for image in images]
        return [self.collect(one, options) for one in pending]

    def close(self) -> None:
        self.batcher.close()
