"""Group and crowd photos through Identify: the photo crosses each hop once, the largest faces (at most
ARGUS_MAX_FACES_PER_IMAGE) are identified and the answer says how many were left out, and the face database's
memory stays bounded however many faces the photo holds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PeakRss

from argus.client import FaceDbClient
from argus.config import Settings
from argus.imaging import decode_image
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.proto.facedb.v1 import facedb_pb2 as pb

ENROLLED = {"obama": "obama.jpg", "biden": "biden.jpg"}  # tiles from these people's photos must be named
COLLECTION = "crowd"
SIDES = (750, 150)  # tile sides: 24 faces make a 3000x4500 photo, 300 faces one of 3000x2250


def faces_in(image: np.ndarray, stub: detector_pb2_grpc.DetectorServiceStub) -> list[detector_pb2.DetectedFace]:
    data = cv2.imencode(".png", image)[1].tobytes()
    request = detector_pb2.DetectFacesRequest(images=[common_pb2.Image(data=data)])
    return list(stub.DetectFaces(request, timeout=60).results[0].faces)


def face_tiles(images_dir: Path, stub: detector_pb2_grpc.DetectorServiceStub) -> list[tuple[str, np.ndarray]]:
    """(source photo, crop) for the test photos of one face: a square of twice the face box around its centre,
    kept when the detector finds just that face in it at both tile sizes, so each tile is one face of a crowd."""
    tiles = []
    for path in sorted((images_dir / "faces").glob("*.jpg")):
        data = path.read_bytes()
        image = decode_image(data, max_bytes=len(data), max_pixels=1 << 30)
        faces = faces_in(image, stub)
        if len(faces) != 1:
            continue
        box = faces[0].box
        half = max(box.x2 - box.x1, box.y2 - box.y1)
        cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        crop = image[y0 : int(cy + half), x0 : int(cx + half)]
        if all(len(faces_in(cv2.resize(crop, (side, side)), stub)) == 1 for side in SIDES):
            tiles.append((path.name, crop))
    return tiles


def crowd(tiles: list[tuple[str, np.ndarray]], count: int, columns: int, side: int) -> tuple[bytes, list[str]]:
    """A JPEG of `count` face tiles side x side on a grid, and the source photo of each tile, row by row."""
    rows = -(-count // columns)
    canvas = np.zeros((rows * side, columns * side, 3), np.uint8)
    sources = []
    for index in range(count):
        name, crop = tiles[index % len(tiles)]
        row, column = divmod(index, columns)
        canvas[row * side : (row + 1) * side, column * side : (column + 1) * side] = cv2.resize(
            crop, (side, side), interpolation=cv2.INTER_AREA
        )
        sources.append(name)
    return cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), sources


def tile_of(face: pb.IdentifiedFace, columns: int, side: int) -> int:
    cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
    return int(cy // side) * columns + int(cx // side)


@pytest.fixture(scope="module")
def tiles(images_dir: Path, detector_stub: detector_pb2_grpc.DetectorServiceStub) -> list[tuple[str, np.ndarray]]:
    found = face_tiles(images_dir, detector_stub)
    assert len(found) >= 6
    return found


@pytest.fixture
def facedb_process(
    facedb_settings: Settings,
    tmp_path: Path,
    free_port: int,
    wait_serving: Callable[..., None],
    images_dir: Path,
) -> Iterator[tuple[str, int]]:
    """A face database server of its own (its memory is what is measured), on the session's detector and embedder,
    with the people of ENROLLED enrolled; gives its address and process id."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {
        "ARGUS_AUTH": "off",
        "ARGUS_DATA_DIR": str(tmp_path),
        "ARGUS_DATABASE_URL": f"sqlite:///{tmp_path / 'facedb.sqlite3'}",
        "ARGUS_DETECTOR_ADDRESS": facedb_settings.detector_address,
        "ARGUS_EMBEDDER_ADDRESS": facedb_settings.embedder_address,
        "ARGUS_MAX_IMAGES_PER_REQUEST": str(facedb_settings.max_images_per_request),  # as the embedder's
        "ARGUS_MAX_IMAGE_PIXELS": str(facedb_settings.max_image_pixels),
    }
    address = f"127.0.0.1:{free_port}"
    command = [sys.executable, "-m", "argus.cli.main", "serve", "facedb", "--port", str(free_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_serving(address, process)
        with FaceDbClient(address, timeout_s=60) as client:
            client.create_collection(COLLECTION)
            for subject, name in ENROLLED.items():
                client.enroll(COLLECTION, subject, [(images_dir / "faces" / name).read_bytes()])
        yield address, process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def identify(address: str, photo: bytes) -> pb.IdentifyResponse:
    with FaceDbClient(address, timeout_s=120) as client:
        return client.identify(COLLECTION, photo)


def test_a_group_photo_of_24_faces_identifies_every_face(
    tiles: list[tuple[str, np.ndarray]], facedb_process: tuple[str, int]
) -> None:
    """24 faces in a 3000x4500 photo of several MB: one copy of it per face would pass the 64 MiB message limit."""
    photo, sources = crowd(tiles, 24, columns=4, side=SIDES[0])
    assert len(photo) * 24 > 64 * 1024 * 1024
    response = identify(facedb_process[0], photo)
    assert (response.faces_found, len(response.faces), response.faces_left_out) == (24, 24, 0)
    named = {tile_of(face, 4, SIDES[0]): face for face in response.faces}
    assert sorted(named) == list(range(24))
    for index, source in enumerate(sources):
        expected = next((subject for subject, name in ENROLLED.items() if source.startswith(subject)), None)
        if expected is not None:
            face = named[index]
            assert not face.unknown and face.candidates[0].subject_id == expected, (index, source)


def test_a_crowd_of_300_faces_identifies_the_largest_in_bounded_memory(
    tiles: list[tuple[str, np.ndarray]],
    facedb_process: tuple[str, int],
    peak_rss: Callable[[int], PeakRss],
) -> None:
    address, pid = facedb_process
    default_cap = Settings.model_fields["max_faces_per_image"].default
    identify(address, crowd(tiles, 4, columns=2, side=300)[0])  # first-call allocations are not the crowd's
    photo, _ = crowd(tiles, 300, columns=20, side=SIDES[1])
    with peak_rss(pid) as rss:
        response = identify(address, photo)
    print(f"facedb RSS growth for a {len(photo)} byte photo of 300 faces: {rss.growth_mb:.0f} MB")
    assert response.faces_found == 300
    assert len(response.faces) == default_cap and response.faces_left_out == 300 - default_cap
    areas = [(f.box.x2 - f.box.x1) * (f.box.y2 - f.box.y1) for f in response.faces]
    assert areas == sorted(areas, reverse=True)  # the largest first, and the largest kept
    assert rss.growth_mb < 300
