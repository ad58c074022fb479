"""dlib's DNN serialisation (``.dat``) read in pure Python, and the dlib face-recognition ResNet rebuilt as ONNX.

No dlib build is needed. ``parse_dat`` walks the whole file in order and returns plain dataclasses;
``build_onnx`` turns them into an ONNX graph following an architecture description; ``convert_dlib`` does both and
returns the serialised model. The output is deterministic: the same ``.dat`` bytes give the same ONNX bytes.

The format (dlib ``serialize``), as found in ``dlib_face_recognition_resnet_model_v1.dat``:

- **int**: one header byte, low nibble = number of bytes that follow (1-8), ``0x80`` = negative; then the magnitude
  as little-endian bytes. ``b"\\x01\\x05"`` is 5, ``b"\\x81\\x05"`` is -5, ``b"\\x02\\x00\\x01"`` is 256.
- **string**: an int length, then the bytes. **bool**: one ASCII byte, ``"1"`` or ``"0"``.
- **float/double**: two ints, mantissa and exponent; the value is ``mantissa * 2**exponent``.
- **tensor**: int version (2), ints num_samples, k, nr, nc, then that many little-endian float32.
  **alias_tensor** (a view into a layer's params): int version (1) and the four ints, no data.
- **network**: ``add_loss_layer`` writes int version 1, its loss details, then the network below it. Every
  ``add_layer`` writes its version (2; 3 for the one directly above the input layer) and *then* the network below it,
  so all the wrapper versions come first, outermost first, in one run. Tag and skip wrappers (``tag1``, ``skip1`` ...)
  write only a version (1) and carry no other data, not even their id. After the run come the input layer, then each
  layer's details from the input side up, each followed by its ``add_layer`` trailer: 3 bools and 3 tensors
  (gradients and cached outputs; empty in a saved model). The ``add_layer`` directly above the input layer (version
  3) also writes its sample expansion factor, an int, at the end of its trailer.

Because tag ids are not stored, where the residual connections go cannot be read from the file: it comes from an
architecture description (``ResNetArch``), and ``check_architecture`` verifies that the file's layer sequence is
exactly the one the description implies before any graph is built.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from argus.files import atomic_write

__all__ = [
    "DLIB_FACE_RESNET_V1",
    "INPUT_SCALE",
    "AddPrevLayer",
    "AffineLayer",
    "ConvLayer",
    "DlibFormatError",
    "DlibNet",
    "DlibReader",
    "FcLayer",
    "InputLayer",
    "Layer",
    "LossMetric",
    "PoolLayer",
    "ReluLayer",
    "ResNetArch",
    "TagOrSkip",
    "build_onnx",
    "check_architecture",
    "convert_dlib",
    "expected_kinds",
    "parse_dat",
]

OPSET = 18
IR_VERSION = 8
#: The producer recorded by the reference conversion (shared/models/candidates, section 1 of CANDIDATES.md); this
#: module reproduces that file byte for byte, so it records the same producer and no producer version.
PRODUCER_NAME = "dlibresnet2onnx-scratch"

#: dlib's ``input_rgb_image*`` layers feed ``(pixel - mean) / 256`` to the network.
INPUT_SCALE = 256.0

# dlib float_details marks non-finite values with these exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes are not a dlib network this reader understands; the message says what and where."""


# ----------------------------------------------------------------------------------------------------------------
# Primitive codecs


class DlibReader:
    """Sequential reader of dlib's primitive encodings over a bytes object."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = memoryview(data).toreadonly()
        self.pos = pos

    @property
    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"truncated: {what} needs {n} bytes at offset {self.pos}, {self.remaining} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read_int(self) -> int:
        start = self.pos
        header = self._take(1, "an int header")[0]
        size = header & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad int header 0x{header:02x} at offset {start}: byte count must be 1-8")
        value = int.from_bytes(self._take(size, "an int"), "little")
        return -value if header & 0x80 else value

    def read_string(self) -> str:
        start = self.pos
        length = self.read_int()
        if length < 0:
            raise DlibFormatError(f"negative string length {length} at offset {start}")
        raw = bytes(self._take(length, "a string"))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"non-ASCII string at offset {start}: {raw[:32]!r}") from exc

    def read_bool(self) -> bool:
        start = self.pos
        byte = self._take(1, "a bool")[0]
        if byte not in (0x30, 0x31):
            raise DlibFormatError(f"bad bool byte 0x{byte:02x} at offset {start}: expected '0' or '1'")
        return byte == 0x31

    def read_float(self) -> float:
        """A dlib float or double: mantissa and exponent ints."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _EXP_INF:
            return float("inf")
        if exponent == _EXP_NINF:
            return float("-inf")
        if exponent == _EXP_NAN:
            return float("nan")
        return float(mantissa) * 2.0**exponent

    def _dims(self, what: str) -> tuple[int, int, int, int]:
        start = self.pos
        dims = (self.read_int(), self.read_int(), self.read_int(), self.read_int())
        if any(d < 0 for d in dims):
            raise DlibFormatError(f"negative {what} dimensions {dims} at offset {start}")
        return dims

    def read_tensor(self) -> np.ndarray:
        """A dlib tensor as a float32 array shaped (num_samples, k, nr, nc)."""
        start = self.pos
        version = self.read_int()
        if version != 2:
            raise DlibFormatError(f"tensor at offset {start} has version {version}; only version 2 is supported")
        dims = self._dims("tensor")
        count = dims[0] * dims[1] * dims[2] * dims[3]
        raw = self._take(4 * count, f"tensor data {dims}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """A dlib alias_tensor: only its shape is stored."""
        start = self.pos
        version = self.read_int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor at offset {start} has version {version}; expected 1")
        return self._dims("alias_tensor")


# ----------------------------------------------------------------------------------------------------------------
# Layers


@dataclass(frozen=True, eq=False)
class LossMetric:
    margin: float
    distance_threshold: float


@dataclass(frozen=True, eq=False)
class InputLayer:
    """``input_rgb_image_sized``: RGB rows x cols; the network sees (pixel - mean) / 256."""

    mean_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class ConvLayer:
    filters: np.ndarray  # (F, C, kh, kw), cross-correlation as in ONNX Conv
    bias: np.ndarray  # (F,)
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), the same on both sides


@dataclass(frozen=True, eq=False)
class AffineLayer:
    """Batch norm frozen into y = gamma * x + beta, per channel."""

    gamma: np.ndarray  # (F,)
    beta: np.ndarray  # (F,)


@dataclass(frozen=True, eq=False)
class ReluLayer:
    pass


@dataclass(frozen=True, eq=False)
class PoolLayer:
    kind: Literal["max", "avg"]
    size: tuple[int, int]  # (rows, cols); (0, 0) = the whole input (avg_pool_everything)
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def is_global(self) -> bool:
        return self.size == (0, 0)


@dataclass(frozen=True, eq=False)
class AddPrevLayer:
    """``add_prev``: adds a tagged earlier output; the smaller tensor is zero-extended at the end of each axis."""


@dataclass(frozen=True, eq=False)
class FcLayer:
    weights: np.ndarray  # (num_inputs, num_outputs): y = x @ weights (+ bias)
    bias: np.ndarray | None  # (num_outputs,) or None for fc_no_bias


@dataclass(frozen=True, eq=False)
class TagOrSkip:
    """A ``tagN`` or ``skipN`` wrapper. The file records only that one sits here, not which kind nor its id."""


Layer = ConvLayer | AffineLayer | ReluLayer | PoolLayer | AddPrevLayer | FcLayer | TagOrSkip


@dataclass(frozen=True, eq=False)
class DlibNet:
    loss: LossMetric
    input: InputLayer
    layers: tuple[Layer, ...]  # from the input side up, wrappers included where they sit


def kind_of(layer: Layer) -> str:
    """A short name per layer, used to compare a file with an architecture description."""
    if isinstance(layer, PoolLayer):
        return "avg_pool_everything" if layer.kind == "avg" and layer.is_global else f"{layer.kind}_pool"
    return {
        ConvLayer: "con",
        AffineLayer: "affine",
        ReluLayer: "relu",
        AddPrevLayer: "add_prev",
        FcLayer: "fc",
        TagOrSkip: "tag/skip",
    }[type(layer)]


# ----------------------------------------------------------------------------------------------------------------
# Parsing


def _expect_string(r: DlibReader, allowed: Sequence[str], what: str) -> str:
    start = r.pos
    name = r.read_string()
    if name not in allowed:
        raise DlibFormatError(f"expected {what} ({' or '.join(allowed)}) at offset {start}, found {name!r}")
    return name


def _read_loss(r: DlibReader) -> LossMetric:
    _expect_string(r, ["loss_metric_2"], "the loss layer")
    return LossMetric(margin=r.read_float(), distance_threshold=r.read_float())


def _read_input(r: DlibReader) -> InputLayer:
    start = r.pos
    name = r.read_string()
    if name != "input_rgb_image_sized":
        raise DlibFormatError(
            f"input layer at offset {start} is {name!r}; only input_rgb_image_sized (a fixed input size) is supported"
        )
    mean = (r.read_float(), r.read_float(), r.read_float())
    rows, cols = r.read_int(), r.read_int()
    if rows <= 0 or cols <= 0:
        raise DlibFormatError(f"input layer at offset {start} has size {rows}x{cols}")
    return InputLayer(mean_rgb=mean, rows=rows, cols=cols)


def _read_con(r: DlibReader, name: str, start: int) -> ConvLayer:
    params = r.read_tensor().reshape(-1)
    num_filters, nr, nc = r.read_int(), r.read_int(), r.read_int()
    stride = (r.read_int(), r.read_int())
    padding = (r.read_int(), r.read_int())
    filters_shape = r.read_alias_tensor()
    r.read_alias_tensor()  # biases: (1, F, 1, 1), or empty when the bias is off
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.read_float()
    use_bias = r.read_bool() if name == "con_5" else True
    f, c, kh, kw = filters_shape
    if (f, kh, kw) != (num_filters, nr, nc) or min(f, c, kh, kw) <= 0:
        raise DlibFormatError(
            f"{name} at offset {start}: filters {filters_shape} disagree with num_filters={num_filters} "
            f"nr={nr} nc={nc} (a filter size of 0 is not supported)"
        )
    if min(stride) <= 0 or min(padding) < 0:
        raise DlibFormatError(f"{name} at offset {start}: stride {stride}, padding {padding}")
    n_weights = f * c * kh * kw
    n_expected = n_weights + (f if use_bias else 0)
    if params.size != n_expected:
        raise DlibFormatError(f"{name} at offset {start}: {params.size} params, expected {n_expected}")
    bias = params[n_weights:].copy() if use_bias else np.zeros(f, np.float32)
    return ConvLayer(params[:n_weights].reshape(f, c, kh, kw).copy(), bias, stride, padding)


def _read_affine(r: DlibReader, start: int) -> AffineLayer:
    params = r.read_tensor().reshape(-1)
    gamma_shape = r.read_alias_tensor()
    r.read_alias_tensor()  # beta, same shape
    mode = r.read_int()
    if mode != 0:
        raise DlibFormatError(f"affine_ at offset {start} is in FC_MODE; only CONV_MODE (per channel) is supported")
    channels = gamma_shape[1]
    if params.size != 2 * channels or gamma_shape != (1, channels, 1, 1):
        raise DlibFormatError(f"affine_ at offset {start}: {params.size} params for gamma shape {gamma_shape}")
    return AffineLayer(params[:channels].copy(), params[channels:].copy())


def _read_pool(r: DlibReader, name: str, start: int) -> PoolLayer:
    size = (r.read_int(), r.read_int())
    stride = (r.read_int(), r.read_int())
    padding = (r.read_int(), r.read_int())
    if min(size) < 0 or min(stride) <= 0 or min(padding) < 0:
        raise DlibFormatError(f"{name} at offset {start}: size {size}, stride {stride}, padding {padding}")
    return PoolLayer("max" if name.startswith("max") else "avg", size, stride, padding)


def _read_fc(r: DlibReader, start: int) -> FcLayer:
    num_outputs, num_inputs = r.read_int(), r.read_int()
    params = r.read_tensor().reshape(-1)
    r.read_alias_tensor()  # weights
    r.read_alias_tensor()  # biases
    bias_mode = r.read_int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
    for _ in range(4):
        r.read_float()
    if bias_mode not in (0, 1) or num_outputs <= 0 or num_inputs <= 0:
        raise DlibFormatError(f"fc_2 at offset {start}: outputs={num_outputs} inputs={num_inputs} mode={bias_mode}")
    rows = num_inputs + (1 if bias_mode == 0 else 0)
    if params.size != rows * num_outputs:
        raise DlibFormatError(f"fc_2 at offset {start}: {params.size} params, expected {rows * num_outputs}")
    table = params.reshape(rows, num_outputs)
    bias = table[num_inputs].copy() if bias_mode == 0 else None
    return FcLayer(table[:num_inputs].copy(), bias)


def _read_layer(r: DlibReader, wrapper_version: int = 2) -> Layer:
    start = r.pos
    name = r.read_string()
    layer: Layer
    if name in ("con_4", "con_5"):
        layer = _read_con(r, name, start)
    elif name == "affine_":
        layer = _read_affine(r, start)
    elif name == "relu_":
        layer = ReluLayer()
    elif name in ("max_pool_2", "avg_pool_2"):
        layer = _read_pool(r, name, start)
    elif name == "add_prev_":
        layer = AddPrevLayer()
    elif name == "fc_2":
        layer = _read_fc(r, start)
    else:
        raise DlibFormatError(f"unsupported dlib layer {name!r} at offset {start}")
    # add_layer's trailer: setup-called, gradient-stale and output-disabled flags, then x_grad, cached_output and
    # params_grad (grad_final above the input layer); empty in a cleaned model, skipped either way.
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        r.read_tensor()
    if wrapper_version == 3:
        r.read_int()  # the input-side add_layer's sample expansion factor
    return layer


def _input_layer_next(r: DlibReader) -> bool:
    """Whether the next item is an input layer's name (a string starting with "input")."""
    peek = DlibReader(r.data, r.pos)
    try:
        length = peek.read_int()
        return 0 < length <= 64 and bytes(peek._take(min(length, 5), "a name")) == b"input"
    except DlibFormatError:
        return False


def parse_dat(data: bytes) -> DlibNet:
    """Read a whole dlib ``loss_metric`` network; every byte must be accounted for."""
    r = DlibReader(data)
    version = r.read_int()
    if version != 1:
        raise DlibFormatError(f"expected add_loss_layer version 1 at offset 0, found {version}")
    loss = _read_loss(r)
    # The wrapper versions, outermost first: 2 = add_layer, 1 = tag/skip; the last one, the add_layer directly above
    # the input layer, is 3 (or 2 in files from older dlib releases).
    wrappers: list[int] = []
    while not (wrappers and _input_layer_next(r)):
        start = r.pos
        version = r.read_int()
        if version not in (1, 2, 3) or (version == 3 and not _input_layer_next(r)):
            raise DlibFormatError(f"unexpected layer wrapper version {version} at offset {start}")
        wrappers.append(version)
    if wrappers[-1] == 1:
        raise DlibFormatError("a tag or skip directly above the input layer is not supported")
    input_layer = _read_input(r)
    layers: list[Layer] = []
    for version in reversed(wrappers):
        layers.append(TagOrSkip() if version == 1 else _read_layer(r, version))
    if not r.at_end:
        raise DlibFormatError(f"{r.remaining} unexpected bytes after the network, at offset {r.pos}")
    return DlibNet(loss=loss, input=input_layer, layers=tuple(layers))


# ----------------------------------------------------------------------------------------------------------------
# Architecture description


@dataclass(frozen=True)
class ResNetArch:
    """Where dlib's tags and skips go, which the file does not record.

    The network is: stem (con, affine, relu, max_pool), then ``blocks`` from the input side, then
    avg_pool_everything and fc. A ``"res"`` block is ``relu<add_prev1<block<tag1<x>>>>``; a ``"down"`` block is
    ``relu<add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>>``, where ``block`` is con-affine-relu-con-affine and
    the first con of a down block carries the stride. Layer sizes, strides and paddings come from the file.

    The other fields are not in the file either; they only label the ONNX model: ``graph_name`` names its graph
    (``name`` when empty), ``provenance`` and ``input_note`` go into its doc string.
    """

    name: str
    blocks: tuple[Literal["res", "down"], ...]
    graph_name: str = ""
    provenance: str = ""  # where the weights come from and under which licence
    input_note: str = ""  # how the input image is made


def _levels(*levels: tuple[int, bool]) -> tuple[Literal["res", "down"], ...]:
    blocks: list[Literal["res", "down"]] = []
    for count, down_first in levels:
        blocks.extend("down" if down_first and i == 0 else "res" for i in range(count))
    return tuple(blocks)


#: dlib's ``anet_type`` from dnn_face_recognition_ex.cpp, from the input side: alevel4 (3 x ares 32),
#: alevel3 (ares_down 64 + 3 x ares 64), alevel2 and alevel1 (ares_down + 2 x ares, 128 and 256), alevel0 (ares_down).
DLIB_FACE_RESNET_V1 = ResNetArch(
    name="dlib_face_recognition_resnet_model_v1",
    blocks=_levels((3, False), (4, True), (3, True), (3, True), (1, True)),
    graph_name="dlib_face_resnet",
    provenance="CC0, Davis King; PyPI face_recognition_models 0.3.0",
    input_note="dlib face chip, size 150, padding 0.25",
)

_STEM = ("con", "affine", "relu", "max_pool")
_BLOCK = ("con", "affine", "relu", "con", "affine")
_RES = ("tag/skip", *_BLOCK, "add_prev", "relu")
_DOWN = ("tag/skip", *_BLOCK, "tag/skip", "tag/skip", "avg_pool", "add_prev", "relu")
_HEAD = ("avg_pool_everything", "fc")


def expected_kinds(arch: ResNetArch) -> tuple[str, ...]:
    """The layer sequence (as ``kind_of`` names it) a file of this architecture holds, from the input side."""
    body = [kind for block in arch.blocks for kind in (_DOWN if block == "down" else _RES)]
    return (*_STEM, *body, *_HEAD)


def check_architecture(net: DlibNet, arch: ResNetArch) -> None:
    """Raise DlibFormatError unless the file's layer sequence is exactly the one ``arch`` implies."""
    found = tuple(kind_of(layer) for layer in net.layers)
    wanted = expected_kinds(arch)
    if found == wanted:
        return
    index = next(
        (i for i, (a, b) in enumerate(zip(found, wanted, strict=False)) if a != b), min(len(found), len(wanted))
    )
    got = found[index] if index < len(found) else "the end"
    exp = wanted[index] if index < len(wanted) else "the end"
    raise DlibFormatError(
        f"the file does not match architecture {arch.name!r}: layer {index} (from the input side) is {got}, "
        f"expected {exp} ({len(found)} layers found, {len(wanted)} expected)"
    )


# ----------------------------------------------------------------------------------------------------------------
# ONNX graph


Shape = tuple[int, int, int]  # (C, H, W) of an NCHW tensor; N stays symbolic


class _GraphBuilder:
    """Collects nodes and initializers in build order.

    Every name gets a running number (``conv64_1/conv1_w_50``), shared by nodes and initializers, so names are unique
    and show the build order; a node's output is named like the node. These are the reference conversion's names.
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def _fresh(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self._fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, base: str, inputs: Sequence[str], graph_output: str | None = None, **attrs: Any) -> str:
        """Add a node; one writing a graph output keeps ``base`` as its plain name and writes ``graph_output``."""
        name = base if graph_output else self._fresh(base)
        out = graph_output or name
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out

    def conv(self, name: str, x: str, shape: Shape, conv: ConvLayer, affine: AffineLayer) -> tuple[str, Shape]:
        f, c, kh, kw = conv.filters.shape
        if c != shape[0]:
            raise DlibFormatError(f"{name}: filters expect {c} input channels, the tensor has {shape[0]}")
        if affine.gamma.shape != (f,):
            raise DlibFormatError(f"{name}: affine has {affine.gamma.shape[0]} channels, the conv has {f}")
        # Fold the affine (frozen batch norm) into the conv: gamma * (W x + b) + beta.
        weights = conv.filters * affine.gamma[:, None, None, None]
        bias = conv.bias * affine.gamma + affine.beta
        (sy, sx), (py, px) = conv.stride, conv.padding
        h = (shape[1] + 2 * py - kh) // sy + 1
        w = (shape[2] + 2 * px - kw) // sx + 1
        if h <= 0 or w <= 0:
            raise DlibFormatError(f"{name}: a {kh}x{kw}/{sy} conv does not fit a {shape[1]}x{shape[2]} input")
        w_name = self.const(f"{name}_w", weights.astype(np.float32))
        b_name = self.const(f"{name}_b", bias.astype(np.float32))
        out = self.node(
            "Conv", name, [x, w_name, b_name], kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px]
        )
        return out, (f, h, w)

    def pool(self, name: str, x: str, shape: Shape, pool: PoolLayer) -> tuple[str, Shape]:
        (kh, kw), (sy, sx) = pool.size, pool.stride
        if pool.padding != (0, 0) or pool.is_global:
            raise DlibFormatError(f"{name}: {pool.kind} pool {pool.size} with padding {pool.padding} is not supported")
        h, w = (shape[1] - kh) // sy + 1, (shape[2] - kw) // sx + 1
        if h <= 0 or w <= 0:
            raise DlibFormatError(f"{name}: a {kh}x{kw} pool does not fit a {shape[1]}x{shape[2]} input")
        op = "MaxPool" if pool.kind == "max" else "AveragePool"
        out = self.node(op, name, [x], kernel_shape=[kh, kw], strides=[sy, sx], pads=[0, 0, 0, 0])
        return out, (shape[0], h, w)

    def pad_to(self, name: str, pads_name: str, x: str, shape: Shape, target: Shape) -> str:
        """Zero-extend channels, rows and columns at their ends, as dlib's add_prev treats the smaller tensor."""
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        if not any(extra):
            return x
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.node("Pad", name, [x, self.const(pads_name, pads)])

    def add_prev(self, name: str, a: str, a_shape: Shape, b: str, b_shape: Shape) -> tuple[str, Shape]:
        """dlib's add_prev of the block's conv path ``a`` and its skip path ``b``."""
        target: Shape = (max(a_shape[0], b_shape[0]), max(a_shape[1], b_shape[1]), max(a_shape[2], b_shape[2]))
        a = self.pad_to(f"{name}_padconv", f"{name}_padc", a, a_shape, target)
        b = self.pad_to(f"{name}_padchan", f"{name}_padch", b, b_shape, target)
        return self.node("Add", f"{name}_add", [a, b]), target


def _block_name(kind: Literal["res", "down"], width_in: int, width: int, res_seen: Counter[int]) -> str:
    """face-api.js's name for a block of the same network, which the reference conversion uses.

    Blocks are named by their output width: ``conv64_down`` for a down block that widens, ``conv256_down_out``
    for one that keeps the width (dlib's last level), ``conv64_1``, ``conv64_2`` ... for the res blocks of a width.
    """
    if kind == "down":
        return f"conv{width}_down" + ("_out" if width == width_in else "")
    res_seen[width] += 1
    return f"conv{width}_{res_seen[width]}"


def _doc_string(net: DlibNet, arch: ResNetArch, out_dim: int) -> str:
    """The model's description, worded as the reference conversion's."""
    source = f"{arch.name}.dat" + (f" ({arch.provenance})" if arch.provenance else "")
    shape = f"[N,{net.input.rows},{net.input.cols},3]" + (f" ({arch.input_note})" if arch.input_note else "")
    mean = ",".join(f"{m:g}" for m in net.input.mean_rgb)
    return (
        f"{source} converted by a scratch pure-Python dlib-serialization reader; fp32. Input NHWC RGB 0..255 {shape}; "
        f"mean ({mean}) and /{INPUT_SCALE:g} are inside the graph. Output embedding [N,{out_dim}] raw "
        "(L2-normalise for cosine)."
    )


def build_onnx(net: DlibNet, arch: ResNetArch = DLIB_FACE_RESNET_V1) -> onnx.ModelProto:
    """The ONNX graph of a parsed dlib ResNet: ``input`` [N,rows,cols,3] RGB 0-255 -> ``embedding`` [N,out].

    The layout, names and metadata are those of the reference conversion (CANDIDATES.md, section 1), so the real
    file gives the reference's bytes exactly.
    """
    check_architecture(net, arch)
    layers = list(net.layers)
    pos = 0

    def take(n: int) -> list[Layer]:
        nonlocal pos
        chunk = layers[pos : pos + n]
        pos += n
        return chunk

    g = _GraphBuilder()
    x = g.node("Transpose", "to_nchw", ["input"], perm=[0, 3, 1, 2])
    mean = np.array(net.input.mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = g.node("Sub", "sub_mean", [x, g.const("mean", mean)])
    inv_scale = np.array([1.0 / INPUT_SCALE], dtype=np.float32)
    x = g.node("Mul", f"scale{INPUT_SCALE:g}", [x, g.const("scale", inv_scale)])
    shape: Shape = (3, net.input.rows, net.input.cols)

    conv, affine, _relu, max_pool = take(len(_STEM))
    assert isinstance(conv, ConvLayer) and isinstance(affine, AffineLayer) and isinstance(max_pool, PoolLayer)
    stem = f"conv{conv.filters.shape[0]}_down"
    x, shape = g.conv(stem, x, shape, conv, affine)
    x = g.node("Relu", f"{stem}_relu", [x])
    x, shape = g.pool("maxpool", x, shape, max_pool)

    res_seen: Counter[int] = Counter()
    for block in arch.blocks:
        chunk = take(len(_DOWN) if block == "down" else len(_RES))
        conv1, affine1, _, conv2, affine2 = chunk[1:6]
        assert isinstance(conv1, ConvLayer) and isinstance(conv2, ConvLayer)
        assert isinstance(affine1, AffineLayer) and isinstance(affine2, AffineLayer)
        name = _block_name(block, shape[0], conv2.filters.shape[0], res_seen)
        skip, skip_shape = x, shape
        y, y_shape = g.conv(f"{name}/conv1", x, shape, conv1, affine1)
        y = g.node("Relu", f"{name}/conv1_relu", [y])
        y, y_shape = g.conv(f"{name}/conv2", y, y_shape, conv2, affine2)
        if block == "down":
            avg_pool = chunk[8]
            assert isinstance(avg_pool, PoolLayer)
            skip, skip_shape = g.pool(f"{name}_pool", skip, skip_shape, avg_pool)
        y, shape = g.add_prev(name, y, y_shape, skip, skip_shape)
        x = g.node("Relu", f"{name}_out", [y])

    global_pool, fc = take(len(_HEAD))
    assert isinstance(global_pool, PoolLayer) and isinstance(fc, FcLayer)
    x = g.node("ReduceMean", "gap", [x, g.const("gap_axes", np.array([2, 3], np.int64))], keepdims=0)
    if fc.weights.shape[0] != shape[0]:
        raise DlibFormatError(f"fc expects {fc.weights.shape[0]} inputs, the pooled tensor has {shape[0]}")
    out_dim = fc.weights.shape[1]
    if fc.bias is None:
        g.node("MatMul", "fc", [x, g.const("fc", fc.weights)], graph_output="embedding")
    else:
        x = g.node("MatMul", "fc_matmul", [x, g.const("fc", fc.weights)])
        g.node("Add", "fc", [x, g.const("fc_bias", fc.bias)], graph_output="embedding")

    graph = helper.make_graph(
        g.nodes,
        arch.graph_name or arch.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", net.input.rows, net.input.cols, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", out_dim])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        doc_string=_doc_string(net, arch, out_dim),
    )
    onnx.checker.check_model(model)
    return model


def convert_dlib(dat_bytes: bytes, arch: ResNetArch = DLIB_FACE_RESNET_V1) -> bytes:
    """A dlib ``.dat`` network as serialised ONNX bytes; the same input always gives the same bytes."""
    blob: bytes = build_onnx(parse_dat(dat_bytes), arch).SerializeToString(deterministic=True)
    return blob


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m argus.models.dlib_format",
        description="Convert dlib_face_recognition_resnet_model_v1.dat to ONNX.",
    )
    parser.add_argument("dat", type=Path)
    parser.add_argument("onnx", type=Path)
    args = parser.parse_args(argv)
    try:
        blob = convert_dlib(args.dat.read_bytes())
    except DlibFormatError as exc:
        print(f"error: {args.dat}: {exc}", file=sys.stderr)
        return 1
    atomic_write(args.onnx, blob)
    print(f"{args.onnx}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
