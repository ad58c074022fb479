"""The TF.js graph-model reader and ONNX builder, checked without the npm package.

Tiny graph models are written here in TF.js's format (model.json + .bin, by a writer independent of the module
under test) with every supported op and weight encoding, converted, run in onnxruntime and compared with a plain
numpy forward pass that follows TensorFlow's NHWC semantics directly (a direct convolution, TF's SAME padding).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from argus.models.tfjs_format import (
    FACERES_OUTPUTS,
    SUPPORTED_OPS,
    GraphModel,
    TfjsFormatError,
    build_onnx,
    convert_tfjs,
    main,
    read_graph_model,
)

# ----------------------------------------------------------------------------------------------------------------
# A writer of TF.js graph models


@dataclass(frozen=True)
class DType:
    """An attribute of kind ``type`` (``{"type": "DT_FLOAT"}``)."""

    name: str


@dataclass(frozen=True)
class Shape:
    dims: tuple[int, ...]


def enc_attr(value: object) -> dict:
    if isinstance(value, DType):
        return {"type": value.name}
    if isinstance(value, Shape):
        return {"shape": {"dim": [{"size": str(d)} for d in value.dims]}}
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": str(value)}
    if isinstance(value, float):
        return {"f": value}
    if isinstance(value, str):
        return {"s": base64.b64encode(value.encode()).decode()}
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        return {"list": {"s": [base64.b64encode(v.encode()).decode() for v in value]}}
    if isinstance(value, list):
        return {"list": {"i": [str(v) for v in value]} if value else {}}
    raise TypeError(value)


def op(name: str, kind: str, *inputs: str, **attrs: object) -> dict:
    node: dict = {"name": name, "op": kind, "attr": {"T": enc_attr(DType("DT_FLOAT"))}}
    node["attr"].update({key: enc_attr(value) for key, value in attrs.items()})
    if inputs:
        node["input"] = list(inputs)
    return node


def conv_attrs(padding: str = "SAME", stride: int = 1, dilation: int = 1) -> dict:
    return {
        "strides": [1, stride, stride, 1],
        "dilations": [1, dilation, dilation, 1],
        "padding": padding,
        "data_format": "NHWC",
        "explicit_paddings": [],
    }


@dataclass(frozen=True)
class Weight:
    """A Const node's value and how it is stored: float32, float16, int32, uint8 or uint16 (quantized)."""

    name: str
    value: np.ndarray
    encoding: str = "float32"

    def encode(self) -> tuple[dict, bytes, np.ndarray]:
        """The manifest entry, the stored bytes and the values a reader must decode from them."""
        v = self.value
        entry: dict = {
            "name": self.name,
            "shape": list(v.shape),
            "dtype": "int32" if v.dtype.kind == "i" else "float32",
        }
        if self.encoding in ("float32", "int32"):
            return entry, v.astype("<f4" if self.encoding == "float32" else "<i4").tobytes(), v
        if self.encoding == "float16":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            half = v.astype("<f2")
            return entry, half.tobytes(), half.astype(np.float32)
        levels = {"uint8": 255, "uint16": 65535}[self.encoding]
        lo, hi = float(v.min()), float(v.max())
        scale = (hi - lo) / levels or 1.0
        q = np.round((v.astype(np.float64) - lo) / scale).astype("<u1" if levels == 255 else "<u2")
        entry["quantization"] = {"dtype": self.encoding, "min": lo, "scale": scale, "original_dtype": entry["dtype"]}
        real = q.astype(np.float64) * scale + lo
        decoded = np.floor(real + 0.5).astype(np.int32) if v.dtype.kind == "i" else real.astype(np.float32)
        return entry, q.tobytes(), decoded


def const(w: Weight) -> dict:
    dtype = "DT_INT32" if w.value.dtype.kind == "i" else "DT_FLOAT"
    shape = {"dim": [{"size": str(d)} for d in w.value.shape]}
    return {
        "name": w.name,
        "op": "Const",
        "attr": {"value": {"tensor": {"dtype": dtype, "tensorShape": shape}}, "dtype": {"type": dtype}},
    }


def write_model(folder: Path, nodes: list[dict], weights: list[Weight], *, shards: int = 1) -> tuple[Path, dict]:
    """Writes model.json and its shard(s); returns the path and the decoded values of every weight."""
    folder.mkdir(parents=True, exist_ok=True)
    entries, chunks, decoded = [], [], {}
    for w in weights:
        entry, raw, values = w.encode()
        entries.append(entry)
        chunks.append(raw)
        decoded[w.name] = values
    blob = b"".join(chunks)
    cut = [len(blob) * i // shards for i in range(shards + 1)]
    paths = [f"group1-shard{i + 1}of{shards}.bin" for i in range(shards)]
    for i, path in enumerate(paths):
        (folder / path).write_bytes(blob[cut[i] : cut[i + 1]])
    doc = {
        "format": "graph-model",
        "generatedBy": "tests",
        "convertedBy": "tests",
        "modelTopology": {"node": [const(w) for w in weights] + nodes, "library": {}, "versions": {}},
        "weightsManifest": [{"paths": paths, "weights": entries}],
    }
    model_json = folder / "model.json"
    model_json.write_text(json.dumps(doc))
    return model_json, decoded


# ----------------------------------------------------------------------------------------------------------------
# TensorFlow semantics in numpy, NHWC throughout


def tf_conv(x: np.ndarray, k: np.ndarray, stride: int, dilation: int, padding: str, depthwise: bool) -> np.ndarray:
    """A direct convolution: TF's SAME pads ``total // 2`` before and the rest after."""
    n, h, w, c = x.shape
    kh, kw = k.shape[:2]
    eff_h, eff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    if padding == "SAME":
        oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        ph, pw = max((oh - 1) * stride + eff_h - h, 0), max((ow - 1) * stride + eff_w - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = math.ceil((h - eff_h + 1) / stride), math.ceil((w - eff_w + 1) / stride)
    out = np.zeros((n, oh, ow, c * k.shape[3] if depthwise else k.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            r, s = i * dilation, j * dilation
            patch = x[:, r : r + (oh - 1) * stride + 1 : stride, s : s + (ow - 1) * stride + 1 : stride, :]
            if depthwise:
                out += (patch[..., :, None] * k[i, j][None, None, None]).reshape(n, oh, ow, -1)
            else:
                out += patch @ k[i, j]
    return out


def tf_forward(nodes: list[dict], values: dict, x: np.ndarray, wanted: list[str]) -> list[np.ndarray]:
    """Runs the nodes (in file order, which the test graphs keep topological) the way TensorFlow defines them."""
    env = {name: v.astype(np.float64) if v.dtype == np.float32 else v for name, v in values.items()}

    def attr(node: dict, key: str) -> object:
        raw = node["attr"][key]
        if "s" in raw:
            return base64.b64decode(raw["s"]).decode()
        if "list" in raw:
            lst = raw["list"]
            return (
                [int(i) for i in lst["i"]] if "i" in lst else [base64.b64decode(s).decode() for s in lst.get("s", [])]
            )
        return raw.get("b")

    for node in nodes:
        a = [env[i] for i in node.get("input", [])]
        kind = node["op"]
        if kind == "Placeholder":
            y = x.astype(np.float64)
        elif kind in ("Conv2D", "DepthwiseConv2dNative"):
            y = tf_conv(
                a[0],
                a[1],
                attr(node, "strides")[1],
                attr(node, "dilations")[1],
                attr(node, "padding"),
                kind != "Conv2D",
            )
        elif kind in ("Add", "Mul", "Minimum", "Maximum"):
            y = {"Add": np.add, "Mul": np.multiply, "Minimum": np.minimum, "Maximum": np.maximum}[kind](a[0], a[1])
        elif kind == "Relu":
            y = np.maximum(a[0], 0)
        elif kind == "Sigmoid":
            y = 1 / (1 + np.exp(-a[0]))
        elif kind == "Softmax":
            e = np.exp(a[0] - a[0].max(-1, keepdims=True))
            y = e / e.sum(-1, keepdims=True)
        elif kind == "Mean":
            y = a[0].mean(axis=tuple(int(i) for i in a[1]), keepdims=bool(attr(node, "keep_dims")))
        elif kind == "_FusedMatMul":
            y = a[0] @ a[1] + a[2]
            if "Relu" in attr(node, "fused_ops"):
                y = np.maximum(y, 0)
        else:
            raise AssertionError(kind)
        env[node["name"]] = y
    return [env[name] for name in wanted]


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.astype(np.float32)})


# ----------------------------------------------------------------------------------------------------------------
# A small FaceRes-shaped network: every supported op, every weight encoding, FaceRes's output node names


def mini_faceres(size: int = 17, channels: int = 4, embed: int = 6, ages: int = 7) -> tuple[list[dict], list[Weight]]:
    rng = np.random.default_rng(7)

    def f32(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    c1, c2 = channels, channels * 2
    weights = [
        Weight("conv1/kernel", f32(3, 3, 3, c1), "float16"),
        Weight("conv1/bias", f32(c1), "float32"),
        Weight("relu/six", np.array(6.0, np.float32), "float32"),
        Weight("relu/zero", np.array(0.0, np.float32), "float16"),
        Weight("dw/kernel", f32(3, 3, c1, 2), "uint8"),  # channel multiplier 2
        Weight("dw/scale", f32(c2) + 1, "uint16"),
        Weight("dw/shift", f32(c2), "float16"),
        Weight("pw/kernel", f32(1, 1, c2, embed), "float16"),
        Weight("dil/kernel", f32(3, 3, embed, embed, scale=0.3), "float32"),
        Weight("valid/kernel", f32(2, 2, embed, embed, scale=0.3), "uint8"),
        Weight("valid/bias4d", f32(1, 1, 1, embed), "float32"),
        Weight("global_pooling/Mean/reduction_indices", np.array([1, 2], np.int32), "int32"),
        Weight("feats/kernel", f32(embed, 5), "float16"),
        Weight("feats/bias", f32(5), "float16"),
        Weight("gender_pred/kernel", f32(5, 1), "float16"),
        Weight("gender_pred/bias", f32(1), "float16"),
        Weight("age_pred/kernel", f32(5, ages), "uint8"),
        Weight("age_pred/bias", f32(ages), "float32"),
    ]
    nodes = [
        op("input_1", "Placeholder", shape=Shape((-1, size, size, 3)), dtype=DType("DT_FLOAT")),
        op("conv1", "Conv2D", "input_1", "conv1/kernel", **conv_attrs("SAME", 2), use_cudnn_on_gpu=True),
        op("conv1/add", "Add", "conv1", "conv1/bias"),
        op("relu", "Relu", "conv1/add"),
        op("relu/min", "Minimum", "relu", "relu/six"),
        op("relu/max", "Maximum", "relu/min", "relu/zero"),
        op("dw", "DepthwiseConv2dNative", "relu/max", "dw/kernel", **conv_attrs("SAME", 2)),
        op("dw/mul", "Mul", "dw/scale", "dw"),  # the constant first
        op("dw/add", "Add", "dw/mul", "dw/shift"),
        op("pw", "Conv2D", "dw/add", "pw/kernel", **conv_attrs("VALID", 1)),
        op("dil", "Conv2D", "pw", "dil/kernel", **conv_attrs("SAME", 1, dilation=2)),
        op("dil/relu", "Relu", "dil"),
        op("sum", "Add", "dil/relu", "pw"),  # two tensors
        op("valid", "Conv2D", "sum", "valid/kernel", **conv_attrs("VALID", 1)),
        op("valid/add", "Add", "valid", "valid/bias4d"),
        op("global_pooling/Mean", "Mean", "valid/add", "global_pooling/Mean/reduction_indices", keep_dims=False),
        op(
            "feats/Relu",
            "_FusedMatMul",
            "global_pooling/Mean",
            "feats/kernel",
            "feats/bias",
            fused_ops=["BiasAdd", "Relu"],
            num_args=1,
            transpose_a=False,
            transpose_b=False,
            epsilon=0.0,
        ),
        op(
            "gender_pred/BiasAdd",
            "_FusedMatMul",
            "feats/Relu",
            "gender_pred/kernel",
            "gender_pred/bias",
            fused_ops=["BiasAdd"],
            num_args=1,
        ),
        op(
            "age_pred/BiasAdd",
            "_FusedMatMul",
            "feats/Relu",
            "age_pred/kernel",
            "age_pred/bias",
            fused_ops=["BiasAdd"],
            num_args=1,
        ),
        op("gender_pred/Sigmoid", "Sigmoid", "gender_pred/BiasAdd"),
        op("age_pred/Softmax", "Softmax", "age_pred/BiasAdd"),
    ]
    return nodes, weights


@pytest.fixture
def mini(tmp_path: Path) -> tuple[Path, list[dict], dict]:
    nodes, weights = mini_faceres()
    model_json, decoded = write_model(tmp_path / "mini", nodes, weights, shards=2)
    return model_json, nodes, decoded


def test_every_supported_op_is_exercised() -> None:
    nodes, _ = mini_faceres()
    assert {n["op"] for n in nodes} | {"Const"} == SUPPORTED_OPS


def test_weights_decode_in_every_encoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    weights = [
        Weight("f32", rng.standard_normal((2, 3)).astype(np.float32)),
        Weight("f16", rng.standard_normal(5).astype(np.float32), "float16"),
        Weight("i32", np.array([[-7, 0, 2**31 - 1]], np.int32), "int32"),
        Weight("u8", rng.standard_normal((3, 3)).astype(np.float32), "uint8"),
        Weight("u16", rng.standard_normal(4).astype(np.float32), "uint16"),
        Weight("u8int", np.array([-3, 0, 5, 250], np.int32), "uint8"),
        Weight("empty", np.zeros((0, 4), np.float32)),
    ]
    model_json, decoded = write_model(tmp_path, [], weights, shards=3)
    model = read_graph_model(model_json)
    assert list(model.weights) == [w.name for w in weights]
    for w in weights:
        got = model.weights[w.name]
        assert got.dtype == decoded[w.name].dtype and got.shape == w.value.shape, w.name
        np.testing.assert_array_equal(got, decoded[w.name], err_msg=w.name)
    # Hand-worked: float16 keeps 11 significant bits; uint8 is q * scale + min.
    np.testing.assert_array_equal(model.weights["f16"], weights[1].value.astype(np.float16).astype(np.float32))
    assert np.abs(model.weights["u8"] - weights[3].value).max() <= (np.ptp(weights[3].value) / 255) / 2 + 1e-6
    assert model.weights["u8int"].tolist() == [-3, 0, 5, 250]
    assert model.generated_by == "tests"


def test_hand_worked_uint8_and_float16_bytes(tmp_path: Path) -> None:
    entries = [
        {"name": "q", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "h", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "bare", "shape": [1], "dtype": "float16"},
    ]
    (tmp_path / "w.bin").write_bytes(bytes([0, 3, 255]) + bytes.fromhex("003c00c0") + bytes.fromhex("0038"))  # 0.5
    doc = {
        "format": "graph-model",
        "modelTopology": {"node": []},
        "weightsManifest": [{"paths": ["w.bin"], "weights": entries}],
    }
    (tmp_path / "model.json").write_text(json.dumps(doc))
    model = read_graph_model(tmp_path / "model.json")
    assert model.weights["q"].tolist() == [-1.0, 0.5, 126.5]
    assert model.weights["h"].tolist() == [1.0, -2.0]
    assert model.weights["bare"].tolist() == [0.5] and model.weights["bare"].dtype == np.float32


def test_converted_graph_matches_numpy(mini: tuple[Path, list[dict], dict]) -> None:
    model_json, nodes, decoded = mini
    onnx_model = build_onnx(read_graph_model(model_json), outputs=FACERES_OUTPUTS)
    x = np.random.default_rng(3).standard_normal((3, 17, 17, 3)).astype(np.float32) * 4
    want = tf_forward(nodes, decoded, x, list(FACERES_OUTPUTS.values()))
    got = run_onnx(onnx_model, x)
    for name, w, g in zip(FACERES_OUTPUTS, want, got, strict=True):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)
    # The batch is dynamic: one sample gives the same rows.
    one = run_onnx(onnx_model, x[1:2])
    np.testing.assert_allclose(one[0], got[0][1:2], rtol=1e-5, atol=1e-5)


def test_nhwc_feature_map_output_is_transposed_back(mini: tuple[Path, list[dict], dict]) -> None:
    model_json, nodes, decoded = mini
    onnx_model = build_onnx(read_graph_model(model_json), outputs={"dw": "dw/add", "pool": "global_pooling/Mean:0"})
    x = np.random.default_rng(4).standard_normal((2, 17, 17, 3)).astype(np.float32)
    want = tf_forward(nodes, decoded, x, ["dw/add", "global_pooling/Mean"])
    got = run_onnx(onnx_model, x)
    assert got[0].shape == (2, 5, 5, 8)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    assert [d.dim_value or d.dim_param for d in onnx_model.graph.output[0].type.tensor_type.shape.dim] == ["N", 5, 5, 8]


def test_depthwise_same_stride2_on_odd_and_even_sizes(tmp_path: Path) -> None:
    """TF's SAME pads the odd pixel at the end (ONNX SAME_UPPER); an even size pads less before than after."""
    for size in (6, 7):
        rng = np.random.default_rng(size)
        kernel = Weight("k", rng.standard_normal((3, 3, 2, 1)).astype(np.float32))
        axes = Weight("axes", np.array([3], np.int32), "int32")
        nodes = [
            op("x", "Placeholder", shape=Shape((-1, size, size, 2))),
            op("dw", "DepthwiseConv2dNative", "x", "k", **conv_attrs("SAME", 2)),
            op("m", "Mean", "dw", "axes", keep_dims=True),
            op("s", "Softmax", "dw"),
        ]
        model_json, decoded = write_model(tmp_path / str(size), nodes, [kernel, axes])
        onnx_model = build_onnx(read_graph_model(model_json), outputs={"dw": "dw", "m": "m", "s": "s"})
        x = rng.standard_normal((2, size, size, 2)).astype(np.float32)
        for w, g in zip(tf_forward(nodes, decoded, x, ["dw", "m", "s"]), run_onnx(onnx_model, x), strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_value_info_agrees_with_onnx_shape_inference(mini: tuple[Path, list[dict], dict]) -> None:
    onnx_model = build_onnx(read_graph_model(mini[0]), outputs=FACERES_OUTPUTS)

    def dims(vi: onnx.ValueInfoProto) -> list[object]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]

    ours = {vi.name: dims(vi) for vi in onnx_model.graph.value_info}
    bare = onnx.ModelProto()
    bare.CopyFrom(onnx_model)
    del bare.graph.value_info[:]
    inferred = {vi.name: dims(vi) for vi in onnx.shape_inference.infer_shapes(bare, strict_mode=True).graph.value_info}
    assert ours == inferred


def test_names_follow_one_running_counter(mini: tuple[Path, list[dict], dict]) -> None:
    """Names are ``tfjs name [+ role]__k`` in graph order: the contract that keeps conversions reproducible."""
    onnx_model = build_onnx(read_graph_model(mini[0]), outputs=FACERES_OUTPUTS)
    g = onnx_model.graph
    assert [n.name for n in g.node[:6]] == [
        "in_nchw__1",
        "conv1__3",
        "conv1/add__5",
        "relu__6",
        "relu/min__8",
        "relu/max__10",
    ]
    assert [t.name for t in g.initializer[:3]] == ["conv1_w__2", "conv1/add_c__4", "relu/min_c__7"]
    assert [n.op_type for n in g.node[-3:]] == ["Identity"] * 3
    assert [n.name for n in g.node[-3:]] == ["embedding_id", "gender_id", "age_id"]
    fused = [n.name for n in g.node if n.name.startswith("feats/")]
    assert [name.split("__")[0] for name in fused] == ["feats/Relu", "feats/Relu_bias", "feats/Relu_relu"]
    assert g.name == "g" and onnx_model.opset_import[0].version == 18 and onnx_model.ir_version == 8


def test_file_order_does_not_matter_and_unused_nodes_are_dropped(tmp_path: Path) -> None:
    nodes, weights = mini_faceres()
    model_json, _ = write_model(tmp_path / "a", nodes, weights)
    shuffled = [*reversed(nodes), op("unused", "TensorListReserve", "input_1")]
    other_json, _ = write_model(tmp_path / "b", shuffled, weights)
    x = np.random.default_rng(5).standard_normal((2, 17, 17, 3)).astype(np.float32)
    a = run_onnx(build_onnx(read_graph_model(model_json), outputs=FACERES_OUTPUTS), x)
    b = run_onnx(build_onnx(read_graph_model(other_json), outputs=FACERES_OUTPUTS), x)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_conversion_is_deterministic(mini: tuple[Path, list[dict], dict], tmp_path: Path) -> None:
    first, second = tmp_path / "1.onnx", tmp_path / "2.onnx"
    convert_tfjs(mini[0], first, FACERES_OUTPUTS)
    convert_tfjs(mini[0], second, FACERES_OUTPUTS)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    assert first.read_bytes() == build_onnx(read_graph_model(mini[0]), outputs=FACERES_OUTPUTS).SerializeToString()


def test_cli_converts_with_faceres_outputs(
    mini: tuple[Path, list[dict], dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.onnx"
    assert main([str(mini[0]), str(out)]) == 0
    assert "sha256 " + hashlib.sha256(out.read_bytes()).hexdigest() in capsys.readouterr().out
    model = onnx.load(out)
    assert [o.name for o in model.graph.output] == ["embedding", "gender", "age"]
    assert model.doc_string.startswith("HSE FaceRes")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main([str(bad), str(tmp_path / "x.onnx")]) == 1
    assert "not JSON" in capsys.readouterr().err


def test_interface_matches_the_reference_faceres_file(shared_dir: Path, tmp_path: Path) -> None:
    """A synthetic model with FaceRes's sizes gets the same input/output interface as the shipped conversion."""
    reference = shared_dir / "models" / "candidates" / "hse_faceres_mobilenet224_vggface2.onnx"
    if not reference.is_file():
        pytest.skip("the reference FaceRes conversion is not in the shared models folder")
    nodes, weights = mini_faceres(size=224, embed=1024, ages=100)
    model_json, _ = write_model(tmp_path, nodes, weights)
    ours = build_onnx(read_graph_model(model_json), outputs=FACERES_OUTPUTS)
    ref = onnx.load(reference, load_external_data=False)

    def interface(m: onnx.ModelProto) -> list[tuple[str, int, list[object]]]:
        return [
            (
                vi.name,
                vi.type.tensor_type.elem_type,
                [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim],
            )
            for vi in [*m.graph.input, *m.graph.output]
        ]

    assert interface(ours) == interface(ref)
    assert (ours.ir_version, ours.opset_import, ours.producer_name) == (
        ref.ir_version,
        ref.opset_import,
        ref.producer_name,
    )


# ----------------------------------------------------------------------------------------------------------------
# Malformed input


def _mutate(tmp_path: Path, edit: Callable[[dict], object]) -> Path:
    nodes, weights = mini_faceres()
    model_json, _ = write_model(tmp_path, nodes, weights)
    doc = json.loads(model_json.read_text())
    edit(doc)
    model_json.write_text(json.dumps(doc))
    return model_json


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["modelTopology"]["node"] if n["name"] == name)


def test_truncated_and_overlong_shards_are_refused(tmp_path: Path) -> None:
    nodes, weights = mini_faceres()
    model_json, _ = write_model(tmp_path, nodes, weights, shards=2)
    shard = tmp_path / "group1-shard2of2.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-1])
    with pytest.raises(TfjsFormatError, match=r"truncated: \d+ bytes, the manifest's 18 weights need \d+"):
        read_graph_model(model_json)
    shard.write_bytes(data + b"\0")
    with pytest.raises(TfjsFormatError, match="too long"):
        read_graph_model(model_json)
    shard.unlink()
    with pytest.raises(TfjsFormatError, match=r"cannot read shard 'group1-shard2of2\.bin'"):
        read_graph_model(model_json)


def test_unknown_op_is_named(tmp_path: Path) -> None:
    model_json = _mutate(tmp_path, lambda doc: _node(doc, "relu").update(op="Relu6"))
    model = read_graph_model(model_json)
    with pytest.raises(TfjsFormatError, match=r"node 'relu': unsupported op 'Relu6'"):
        build_onnx(model, outputs=FACERES_OUTPUTS)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: _node(d, "conv1")["attr"].update(padding=enc_attr("EXPLICIT")), "padding 'EXPLICIT'"),
        (lambda d: _node(d, "conv1")["attr"].update(data_format=enc_attr("NCHW")), "data_format 'NCHW'"),
        (
            lambda d: _node(d, "conv1")["attr"].update(explicit_paddings=enc_attr([0, 0, 1, 1, 1, 1, 0, 0])),
            "explicit_paddings",
        ),
        (lambda d: _node(d, "conv1")["attr"].update(strides=enc_attr([2, 2])), "strides"),
        (lambda d: _node(d, "feats/Relu")["attr"].update(fused_ops=enc_attr(["BiasAdd", "Relu6"])), "fused_ops"),
        (lambda d: _node(d, "feats/Relu")["attr"].update(transpose_b=enc_attr(True)), "transpose"),
        (lambda d: _node(d, "relu")["attr"].update(T={"type": "DT_HALF"}), "DT_HALF"),
        (
            lambda d: (
                _node(d, "global_pooling/Mean")["attr"].update(keep_dims=enc_attr(False))
                or _node(d, "global_pooling/Mean").update(input=["valid/add", "feats/kernel"])
            ),
            "reduction axes",
        ),
        (lambda d: _node(d, "conv1").update(input=["input_1", "input_1"]), "must be a Const"),
        (lambda d: _node(d, "relu").update(input=["nowhere"]), "'nowhere' is needed but not in the graph"),
        (lambda d: _node(d, "relu").update(input=["relu/max"]), "cycle"),
    ],
)
def test_unsupported_attributes_are_refused(tmp_path: Path, edit: Callable[[dict], object], match: str) -> None:
    model = read_graph_model(_mutate(tmp_path, edit))
    with pytest.raises(TfjsFormatError, match=match):
        build_onnx(model, outputs=FACERES_OUTPUTS)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="layers-model"), "only 'graph-model'"),
        (lambda d: d.pop("modelTopology"), "modelTopology"),
        (lambda d: d["weightsManifest"][0].update(paths=["../escape.bin"]), "must stay in the model's folder"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(dtype="bool"), "unsupported dtype 'bool'"),
        (
            lambda d: d["weightsManifest"][0]["weights"][0].update(quantization={"dtype": "int8"}),
            "quantization dtype 'int8'",
        ),
        (lambda d: d["weightsManifest"][0]["weights"][4]["quantization"].pop("scale"), "needs a number 'scale'"),
        (lambda d: d["weightsManifest"][0]["weights"][0].update(shape=[3, -1]), "bad shape"),
        (lambda d: d["weightsManifest"][0]["weights"].append(dict(d["weightsManifest"][0]["weights"][2])), "truncated"),
        (lambda d: d["modelTopology"]["node"].append({"name": "relu", "op": "Relu"}), "two nodes are named 'relu'"),
        (lambda d: _node(d, "conv1")["attr"].update(padding={"s": "!!"}), "not base64"),
        (lambda d: _node(d, "conv1").update(input=["input_1:1", "conv1/kernel"]), "only output 0"),
    ],
)
def test_malformed_model_json_is_refused(tmp_path: Path, edit: Callable[[dict], object], match: str) -> None:
    with pytest.raises(TfjsFormatError, match=match):
        read_graph_model(_mutate(tmp_path, edit))


def test_missing_output_and_not_json(tmp_path: Path, mini: tuple[Path, list[dict], dict]) -> None:
    model = read_graph_model(mini[0])
    with pytest.raises(TfjsFormatError, match="'nope' is needed but not in the graph"):
        build_onnx(model, outputs={"x": "nope"})
    with pytest.raises(TfjsFormatError, match="no outputs"):
        build_onnx(model, outputs={})
    with pytest.raises(TfjsFormatError, match="no node named"):
        GraphModel(nodes=(), weights={}).node("x")
    (tmp_path / "junk.json").write_bytes(b"\xff\xfe")
    with pytest.raises(TfjsFormatError, match="not JSON"):
        read_graph_model(tmp_path / "junk.json")
    with pytest.raises(TfjsFormatError, match="cannot read"):
        read_graph_model(tmp_path / "absent.json")
