"""Conversions between the common protobuf messages and plain tuples/arrays, shared by servicers and clients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from argus.proto.common.v1 import common_pb2

# The FaceLandmarks fields in declaration order (right eye, left eye, nose tip, right and left mouth corners):
# taken from the contract itself so a detector's points, an embedder's alignment and a client all agree.
LANDMARK_NAMES: tuple[str, ...] = tuple(field.name for field in common_pb2.FaceLandmarks.DESCRIPTOR.fields)


def box_message(box: tuple[float, float, float, float]) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x1=box[0], y1=box[1], x2=box[2], y2=box[3])


def box_tuple(message: common_pb2.BoundingBox) -> tuple[float, float, float, float]:
    """The inverse of box_message: (x1, y1, x2, y2) in source pixels."""
    return (message.x1, message.y1, message.x2, message.y2)


def landmarks_message(points: Sequence[Sequence[float]] | np.ndarray) -> common_pb2.FaceLandmarks:
    """Five (x, y) points, in LANDMARK_NAMES order, to a FaceLandmarks message."""
    return common_pb2.FaceLandmarks(
        **{name: common_pb2.Point(x=float(x), y=float(y)) for name, (x, y) in zip(LANDMARK_NAMES, points, strict=True)}
    )


def landmarks_array(message: common_pb2.FaceLandmarks) -> np.ndarray:
    """The inverse of landmarks_message: a (5, 2) float64 array of (x, y), in LANDMARK_NAMES order.

    A point that was never set reads as (0, 0), as proto3 has it; callers that must tell check HasField.
    """
    return np.array([[getattr(message, name).x, getattr(message, name).y] for name in LANDMARK_NAMES], dtype=np.float64)


# Trailing metadata of an all-or-nothing Enroll refused for its photos: an EnrollResponse holding every photo's
# outcome, so that a client can tell which photo failed and why without parsing the message.
PHOTO_OUTCOMES_KEY = "argus-photo-outcomes-bin"
# Trailers share gRPC's metadata limit (8 KiB by default, with the status message): outcomes over this many bytes go
# without their candidate boxes, then without their words, and never over it.
MAX_OUTCOMES_BYTES = 4096
