"""COCO box AP of the object detector, on a COCO-json or a YOLO-format (Ultralytics) folder.

Plain functions over a data folder and a built detector, so a CLI, a test or a notebook can call them the same way.
Nothing here prints: pycocotools' own chatter is swallowed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from argus.evaluation.images import DETECTION_CHUNK, chunks, read_image
from argus.services.detector.objects import COCO_CLASSES, ObjectDetector, ObjectOptions

# The usual COCO protocol: keep almost every candidate so the precision-recall curve runs to the end.
EVAL_SCORE_THRESHOLD = 0.001
EVAL_NMS_IOU = 0.65
EVAL_MAX_DETECTIONS = 100

# Official COCO category id (1..90, with gaps) of each of the 80 contiguous classes, in COCO_CLASSES order.
COCO80_TO_COCO91: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

Layout = Literal["yolo", "coco"]


@dataclass(frozen=True)
class CocoGroundTruth:
    """A data folder as one in-memory COCO data set, plus how model classes map onto its categories."""

    layout: Layout
    dataset: dict[str, Any]  # COCO json: images, annotations, categories
    paths: dict[int, Path]  # image id -> file
    category_ids: tuple[int, ...]  # model class index -> category id

    @property
    def image_ids(self) -> list[int]:
        return [image["id"] for image in self.dataset["images"]]


@dataclass(frozen=True)
class CocoResult:
    layout: str
    images: int
    annotations: int  # ground-truth boxes, crowd regions included
    detections: int
    ap50_95: float
    ap50: float
    ap75: float
    ap_small: float | None  # None: no ground truth of that size in the images evaluated
    ap_medium: float | None
    ap_large: float | None
    ar100: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_layout(data_dir: Path) -> Layout:
    """'yolo' when the folder has images/ beside labels/ (Ultralytics), 'coco' when it has annotations/*.json.

    YOLO wins when both are present: coco128 ships a json derived from its own labels, the labels are the source.
    """
    if (data_dir / "images").is_dir() and (data_dir / "labels").is_dir():
        return "yolo"
    if sorted((data_dir / "annotations").glob("instances_*.json")):
        return "coco"
    raise ValueError(
        f"{data_dir} is neither a YOLO folder (images/ and labels/) nor a COCO folder (annotations/instances_*.json)"
    )


def parse_yolo_labels(text: str, width: int, height: int) -> list[tuple[int, tuple[float, float, float, float]]]:
    """YOLO label lines (`class cx cy w h`, normalised) to (class, (x, y, w, h) in pixels), COCO's box form."""
    boxes = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"line {number}: expected `class cx cy w h`, got {line!r}")
        cx, cy, w, h = (float(value) for value in fields[1:])
        box = ((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
        boxes.append((int(fields[0]), box))
    return boxes


def load_ground_truth(data_dir: Path, limit: int | None = None, layout: Layout | None = None) -> CocoGroundTruth:
    """The first `limit` images (by file name) of a YOLO or COCO-json folder, with their boxes."""
    layout = layout or detect_layout(data_dir)
    return _load_yolo(data_dir, limit) if layout == "yolo" else _load_coco_json(data_dir, limit)


def _upright_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF rotation, as decode_image will return it, from the header alone."""
    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _load_yolo(data_dir: Path, limit: int | None) -> CocoGroundTruth:
    """Images under images/, labels at the same relative path under labels/ (.txt); a missing label: no objects."""
    names_file = data_dir / "classes.txt"
    names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()] if names_file.exists() else []
    names = names or list(COCO_CLASSES)
    unknown = [name for name in names if name not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"{names_file}: class names {unknown} are not COCO classes the model knows")
    # Category ids are the official COCO ids of the model's classes, so both layouts report the same ids.
    categories = [{"id": COCO80_TO_COCO91[COCO_CLASSES.index(n)], "name": n} for n in names]
    label_category = [category["id"] for category in categories]

    images_dir, labels_dir = data_dir / "images", data_dir / "labels"
    files = sorted(
        (p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(images_dir),
    )[:limit]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    paths: dict[int, Path] = {}
    for image_id, path in enumerate(files, 1):
        width, height = _upright_size(path)
        images.append(
            {"id": image_id, "file_name": str(path.relative_to(images_dir)), "width": width, "height": height}
        )
        paths[image_id] = path
        label = (labels_dir / path.relative_to(images_dir)).with_suffix(".txt")
        if not label.exists():
            continue
        try:
            boxes = parse_yolo_labels(label.read_text(), width, height)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        for class_index, box in boxes:
            if not 0 <= class_index < len(label_category):
                raise ValueError(f"{label}: class {class_index} outside 0..{len(label_category) - 1}")
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label_category[class_index],
                    "bbox": list(box),
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    dataset = {"images": images, "annotations": annotations, "categories": categories}
    return CocoGroundTruth("yolo", dataset, paths, COCO80_TO_COCO91)


def _load_coco_json(data_dir: Path, limit: int | None) -> CocoGroundTruth:
    """annotations/instances_<split>.json with the images in <split>/; model classes matched to categories by name."""
    candidates = sorted((data_dir / "annotations").glob("instances_*.json"))
    if len(candidates) != 1:
        raise ValueError(f"expected one annotations/instances_*.json in {data_dir}, found {len(candidates)}")
    annotation_file = candidates[0]
    full = json.loads(annotation_file.read_text())

    by_name = {category["name"]: category["id"] for category in full["categories"]}
    missing = [name for name in COCO_CLASSES if name not in by_name]
    if missing:
        raise ValueError(f"{annotation_file}: no category named {missing}; the model's classes must all be there")
    category_ids = tuple(by_name[name] for name in COCO_CLASSES)

    images = sorted(full["images"], key=lambda image: image["file_name"])[:limit]
    kept = {image["id"] for image in images}
    dataset = {
        "images": images,
        "annotations": [ann for ann in full["annotations"] if ann["image_id"] in kept],
        "categories": full["categories"],
    }
    images_dir = _image_folder(data_dir, annotation_file.stem.removeprefix("instances_"), images)
    paths = {image["id"]: images_dir / image["file_name"] for image in images}
    return CocoGroundTruth("coco", dataset, paths, category_ids)


def _image_folder(data_dir: Path, split: str, images: list[dict[str, Any]]) -> Path:
    """The folder the json's file names are relative to: <split>/ or images/<split>/ as COCO ships them, else the
    first folder (data_dir, images/, or one below either) that holds the first image.
    """
    preferred = [data_dir / split, data_dir / "images" / split, data_dir / "images", data_dir]
    others = sorted(p for parent in (data_dir, data_dir / "images") if parent.is_dir() for p in parent.iterdir())
    folders = [folder for folder in [*preferred, *others] if folder.is_dir()]
    if not images:
        return folders[0] if folders else data_dir
    for folder in folders:
        if (folder / images[0]["file_name"]).is_file():
            return folder
    raise ValueError(f"{images[0]['file_name']} is in none of {[str(f) for f in folders]}")


def predict_coco(detector: ObjectDetector, truth: CocoGroundTruth) -> list[dict[str, Any]]:
    """COCO result records (image_id, category_id, bbox as x, y, w, h, score) for every image in truth."""
    options = ObjectOptions(EVAL_SCORE_THRESHOLD, EVAL_NMS_IOU, EVAL_MAX_DETECTIONS)
    sizes = {image["id"]: (image["height"], image["width"]) for image in truth.dataset["images"]}
    results = []
    for ids in chunks(truth.image_ids, DETECTION_CHUNK):
        batch = [read_image(truth.paths[image_id]) for image_id in ids]
        for image_id, image in zip(ids, batch, strict=True):
            if image.shape[:2] != sizes[image_id]:
                raise ValueError(
                    f"{truth.paths[image_id]} is {image.shape[1]}x{image.shape[0]} but its annotations say "
                    f"{sizes[image_id][1]}x{sizes[image_id][0]}"
                )
        for image_id, found in zip(ids, detector.detect(batch, options), strict=True):
            for obj in found:
                x1, y1, x2, y2 = obj.box
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": truth.category_ids[obj.class_id],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": obj.score,
                    }
                )
    return results


def coco_stats(truth: CocoGroundTruth, results: list[dict[str, Any]]) -> np.ndarray:
    """COCOeval's twelve bbox numbers (AP@[.5:.95], AP50, AP75, AP S/M/L, AR1, AR10, AR100, AR S/M/L).

    -1 marks a number with no ground truth behind it; with no detections at all every AP is 0.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(truth.dataset)  # COCOeval marks 'ignore' on the ground-truth records
        gt.createIndex()
        if not results:
            return np.zeros(12)
        dt = gt.loadRes([dict(record) for record in results])  # loadRes writes ids and areas into the records
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = truth.image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats, dtype=np.float64)


def evaluate_coco(
    detector: ObjectDetector, data_dir: Path, limit: int | None = None, layout: Layout | None = None
) -> CocoResult:
    """Box AP of the object detector on a YOLO or COCO-json folder (layout found from the files unless given).

    Runs at score 0.001, NMS IoU 0.65, 100 boxes per image, the settings COCO numbers are usually quoted at.
    """
    started = time.perf_counter()
    truth = load_ground_truth(data_dir, limit, layout)
    if not truth.dataset["annotations"]:
        raise ValueError(f"no ground-truth boxes in the {len(truth.image_ids)} image(s) chosen from {data_dir}")
    results = predict_coco(detector, truth)
    stats = coco_stats(truth, results)

    def sized(value: float) -> float | None:
        return None if value < 0 else float(value)

    return CocoResult(
        layout=truth.layout,
        images=len(truth.image_ids),
        annotations=len(truth.dataset["annotations"]),
        detections=len(results),
        ap50_95=float(stats[0]),
        ap50=float(stats[1]),
        ap75=float(stats[2]),
        ap_small=sized(stats[3]),
        ap_medium=sized(stats[4]),
        ap_large=sized(stats[5]),
        ar100=float(stats[8]),
        seconds=time.perf_counter() - started,
    )
