"""The dlib .dat reader and ONNX builder, checked without the 100 MB registry package.

The codecs are checked on hand-worked bytes; a tiny ResNet with random weights is written in dlib's format by the
writer below (independent of the module under test), converted, and compared with a plain numpy forward pass that
follows dlib's semantics, including add_prev's zero-padding when the two paths differ in size and channels.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from argus.models.dlib_format import (
    DLIB_FACE_RESNET_V1,
    AddPrevLayer,
    AffineLayer,
    ConvLayer,
    DlibFormatError,
    DlibReader,
    FcLayer,
    PoolLayer,
    ReluLayer,
    ResNetArch,
    TagOrSkip,
    build_onnx,
    check_architecture,
    convert_dlib,
    expected_kinds,
    main,
    parse_dat,
)

# ---------------------------------------------------------------------------------------------------------------
# Codecs on hand-worked bytes


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x01\x05", 5),
        (b"\x81\x05", -5),
        (b"\x01\x00", 0),
        (b"\x01\xff", 255),
        (b"\x02\x00\x01", 256),
        (b"\x02\x80\x12", 4736),  # the stem conv's params count: 32*3*7*7 + 32
        (b"\x82\x34\x12", -0x1234),
        (b"\x04\x78\x56\x34\x12", 0x12345678),
        (b"\x08" + b"\xff" * 8, 2**64 - 1),
    ],
)
def test_int_decodes_hand_worked_bytes(raw: bytes, value: int) -> None:
    reader = DlibReader(raw)
    assert reader.read_int() == value
    assert reader.at_end


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x09" + b"\x00" * 9, b"\x02\x00", b"\x84\x01"])
def test_int_rejects_bad_or_truncated_bytes(raw: bytes) -> None:
    with pytest.raises(DlibFormatError):
        DlibReader(raw).read_int()


def test_string_bool_float_and_tensor_decode_hand_worked_bytes() -> None:
    reader = DlibReader(b"\x01\x05con_4" + b"\x01\x07affine_" + b"10")
    assert reader.read_string() == "con_4"
    assert reader.read_string() == "affine_"
    assert reader.read_bool() is True
    assert reader.read_bool() is False
    assert reader.at_end

    # Floats are mantissa and exponent ints. These are the real file's loss margin, a learning-rate multiplier
    # and the input layer's red mean: 0xa3d70a * 2**-28, 16 * 2**-4 and 0xf59062 * 2**-17.
    reader = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x10\x81\x04" + b"\x03\x62\x90\xf5\x81\x11")
    assert reader.read_float() == 10737418 * 2.0**-28 == pytest.approx(0.04)
    assert reader.read_float() == 1.0
    assert reader.read_float() == 16093282 / 131072 == pytest.approx(122.782, abs=1e-5)

    # A tensor: version 2, dims (num_samples, k, nr, nc) = (1, 2, 1, 1), then little-endian float32 1.5 and -2.0.
    raw = b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x01" + b"\x00\x00\xc0\x3f" + b"\x00\x00\x00\xc0"
    reader = DlibReader(raw)
    tensor = reader.read_tensor()
    assert tensor.shape == (1, 2, 1, 1)
    assert tensor.dtype == np.float32
    assert tensor.reshape(-1).tolist() == [1.5, -2.0]
    assert reader.at_end
    empty = DlibReader(b"\x01\x02" + b"\x01\x00" * 4).read_tensor()
    assert empty.shape == (0, 0, 0, 0)
    assert DlibReader(b"\x01\x01\x01\x01\x01\x20\x01\x03\x01\x03").read_alias_tensor() == (1, 32, 3, 3)


@pytest.mark.parametrize(
    ("method", "raw", "match"),
    [
        ("read_string", b"\x01\x09con_4", "truncated"),  # shorter than its length
        ("read_tensor", b"\x01\x01" + b"\x01\x00" * 4, "version 1"),
        ("read_tensor", b"\x01\x02" + b"\x01\x01" * 3 + b"\x01\x02" + b"\x00\x00", "truncated"),  # data cut short
        ("read_alias_tensor", b"\x01\x02" + b"\x01\x00" * 4, "version 2"),
    ],
)
def test_truncated_or_wrong_version_items_are_refused(method: str, raw: bytes, match: str) -> None:
    with pytest.raises(DlibFormatError, match=match):
        getattr(DlibReader(raw), method)()


def test_bool_must_be_an_ascii_digit() -> None:
    with pytest.raises(DlibFormatError, match="bool"):
        DlibReader(b"\x01").read_bool()


# ---------------------------------------------------------------------------------------------------------------
# A test-side writer of dlib's serialisation (independent of the module under test)


def enc_int(value: int) -> bytes:
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_str(text: str) -> bytes:
    return enc_int(len(text)) + text.encode("ascii")


def enc_bool(flag: bool) -> bytes:
    return b"1" if flag else b"0"


def enc_float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return enc_int(int(mantissa * 2**24)) + enc_int(exponent - 24)


def enc_tensor(array: np.ndarray) -> bytes:
    dims = array.shape + (1,) * (4 - array.ndim)
    return enc_int(2) + b"".join(enc_int(d) for d in dims) + np.asarray(array, "<f4").tobytes()


def enc_alias(*dims: int) -> bytes:
    return enc_int(1) + b"".join(enc_int(d) for d in dims)


EMPTY_TENSOR = enc_tensor(np.zeros((0, 0, 0, 0), np.float32))
MULTIPLIERS = enc_float(1.0) * 3 + enc_float(0.0)


def test_writer_agrees_with_the_hand_worked_bytes() -> None:
    assert enc_int(5) == b"\x01\x05"
    assert enc_int(-5) == b"\x81\x05"
    assert enc_int(256) == b"\x02\x00\x01"
    assert enc_int(0) == b"\x01\x00"
    assert enc_str("con_4") == b"\x01\x05con_4"
    assert enc_float(1.0) == b"\x03\x00\x00\x80\x81\x17"  # 2**23 * 2**-23
    assert DlibReader(enc_float(122.78199768066406)).read_float() == 122.78199768066406


@dataclass
class Conv:
    w: np.ndarray  # (F, C, kh, kw)
    b: np.ndarray
    stride: int
    pad: int


@dataclass
class Affine:
    gamma: np.ndarray
    beta: np.ndarray


TAG = "tag/skip"


def write_con(conv: Conv, version: str) -> bytes:
    f, c, kh, kw = conv.w.shape
    params = np.concatenate([conv.w.reshape(-1), conv.b])
    out = enc_str(version) + enc_tensor(params.reshape(-1, 1, 1, 1))
    out += b"".join(enc_int(v) for v in (f, kh, kw, conv.stride, conv.stride, conv.pad, conv.pad))
    out += enc_alias(f, c, kh, kw) + enc_alias(1, f, 1, 1) + MULTIPLIERS
    if version == "con_5":
        out += enc_bool(True)
    return out


def write_affine(affine: Affine) -> bytes:
    f = affine.gamma.size
    params = np.concatenate([affine.gamma, affine.beta]).reshape(-1, 1, 1, 1)
    return enc_str("affine_") + enc_tensor(params) + enc_alias(1, f, 1, 1) * 2 + enc_int(0)  # CONV_MODE


def write_pool(name: str, size: int, stride: int) -> bytes:
    return enc_str(name) + b"".join(enc_int(v) for v in (size, size, stride, stride, 0, 0))


def write_fc(weights: np.ndarray, bias: np.ndarray | None) -> bytes:
    n_in, n_out = weights.shape
    table = weights if bias is None else np.vstack([weights, bias[None, :]])
    out = enc_str("fc_2") + enc_int(n_out) + enc_int(n_in) + enc_tensor(table.reshape(table.shape[0], n_out, 1, 1))
    out += enc_alias(n_in, n_out, 1, 1) + (enc_alias(0, 0, 0, 0) if bias is None else enc_alias(1, n_out, 1, 1))
    return out + enc_int(1 if bias is None else 0) + MULTIPLIERS


def write_network(mean: tuple[float, float, float], size: int, items: list[bytes | str], input_version: int) -> bytes:
    """dlib's nesting: every wrapper's version first (outermost first), then input, then each layer + trailer."""
    assert items[0] != TAG
    versions = [1 if item == TAG else 2 for item in items]
    versions[0] = input_version
    out = enc_int(1) + enc_str("loss_metric_2") + enc_float(0.04) + enc_float(0.6)
    out += b"".join(enc_int(v) for v in reversed(versions))
    out += enc_str("input_rgb_image_sized") + b"".join(enc_float(m) for m in mean) + enc_int(size) + enc_int(size)
    for i, item in enumerate(items):
        if item == TAG:
            continue
        assert isinstance(item, bytes)
        out += item + b"110" + EMPTY_TENSOR * 3
        if i == 0 and input_version == 3:
            out += enc_int(1)  # sample expansion factor
    return out


# ---------------------------------------------------------------------------------------------------------------
# The tiny network: stem conv 5x5/2 (37 -> 17), max pool 3x3/2 (-> 8), res 4ch @ 8x8,
# down 4 -> 6ch (conv path 3x3 vs pool path 4x4: the conv path is padded at bottom/right, the pool path in channels),
# res 6ch @ 4x4, down 6 -> 6ch (1x1 vs 2x2: spatial padding only, as in the real model's last block), global pool, fc.

TINY = ResNetArch(name="tiny_dlib_resnet", blocks=("res", "down", "res", "down"))
SIZE = 37


@dataclass
class Tiny:
    mean: tuple[float, float, float]
    stem: tuple[Conv, Affine]
    blocks: list[tuple[str, Conv, Affine, Conv, Affine]]
    fc_w: np.ndarray
    fc_b: np.ndarray | None


def make_tiny(seed: int, fc_bias: bool) -> Tiny:
    rng = np.random.default_rng(seed)

    def conv(f: int, c: int, k: int, stride: int, pad: int) -> Conv:
        w = rng.normal(0, 1 / math.sqrt(c * k * k), (f, c, k, k)).astype(np.float32)
        return Conv(w, rng.normal(0, 0.1, f).astype(np.float32), stride, pad)

    def affine(f: int) -> Affine:
        return Affine(rng.uniform(0.5, 1.5, f).astype(np.float32), rng.normal(0, 0.1, f).astype(np.float32))

    blocks = []
    channels = 4
    for kind, out in (("res", 4), ("down", 6), ("res", 6), ("down", 6)):
        stride, pad = (2, 0) if kind == "down" else (1, 1)
        blocks.append((kind, conv(out, channels, 3, stride, pad), affine(out), conv(out, out, 3, 1, 1), affine(out)))
        channels = out
    mean = tuple(float(np.float32(m)) for m in rng.uniform(90, 130, 3))
    return Tiny(
        mean=mean,  # type: ignore[arg-type]
        stem=(conv(4, 3, 5, 2, 0), affine(4)),
        blocks=blocks,
        fc_w=rng.normal(0, 0.5, (6, 5)).astype(np.float32),
        fc_b=rng.normal(0, 0.1, 5).astype(np.float32) if fc_bias else None,
    )


def tiny_dat(net: Tiny, con_version: str = "con_4", input_version: int = 3) -> bytes:
    stem_conv, stem_affine = net.stem
    items: list[bytes | str] = [
        write_con(stem_conv, con_version),
        write_affine(stem_affine),
        enc_str("relu_"),
        write_pool("max_pool_2", 3, 2),
    ]
    for kind, c1, a1, c2, a2 in net.blocks:
        block = [write_con(c1, con_version), write_affine(a1), enc_str("relu_"), write_con(c2, con_version)]
        block.append(write_affine(a2))
        if kind == "res":  # relu<add_prev1<block<tag1<x>>>>
            items += [TAG, *block, enc_str("add_prev_"), enc_str("relu_")]
        else:  # relu<add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>>
            items += [TAG, *block, TAG, TAG, write_pool("avg_pool_2", 2, 2), enc_str("add_prev_"), enc_str("relu_")]
    items += [enc_str("avg_pool_2") + b"".join(enc_int(v) for v in (0, 0, 1, 1, 0, 0)), write_fc(net.fc_w, net.fc_b)]
    return write_network(net.mean, SIZE, items, input_version)


# A plain numpy forward pass with dlib's semantics, in float64.


def np_conv(x: np.ndarray, conv: Conv) -> np.ndarray:
    p = conv.pad
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = sliding_window_view(x, conv.w.shape[2:], axis=(2, 3))[:, :, :: conv.stride, :: conv.stride]
    return np.einsum("nchwij,fcij->nfhw", windows, conv.w.astype(np.float64)) + conv.b[None, :, None, None]


def np_affine(x: np.ndarray, affine: Affine) -> np.ndarray:
    return x * affine.gamma[None, :, None, None] + affine.beta[None, :, None, None]


def np_pool(x: np.ndarray, size: int, stride: int, reduce: str) -> np.ndarray:
    windows = sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    return windows.max(axis=(-2, -1)) if reduce == "max" else windows.mean(axis=(-2, -1))


def np_add_prev(a: np.ndarray, b: np.ndarray, at_end: bool = True) -> np.ndarray:
    """dlib's add_prev: the output takes the larger size on every axis; missing elements count as zero.

    dlib puts them at the end of each axis (bottom/right, extra channels); ``at_end=False`` is the wrong rule
    (zeros at the start), kept to show that the comparison can tell the two apart.
    """
    out = np.zeros(tuple(max(s, t) for s, t in zip(a.shape, b.shape, strict=True)))
    for t in (a, b):
        if at_end:
            out[tuple(slice(0, n) for n in t.shape)] += t
        else:
            out[tuple(slice(m - n, m) for n, m in zip(t.shape, out.shape, strict=True))] += t
    return out


def np_relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def np_forward(net: Tiny, images: np.ndarray, log: list | None = None, pad_at_end: bool = True) -> np.ndarray:
    """``log`` collects the (C, H, W) of both paths at every add_prev."""
    x = (images.astype(np.float64) - np.array(net.mean)) / 256.0
    x = x.transpose(0, 3, 1, 2)
    x = np_pool(np_relu(np_affine(np_conv(x, net.stem[0]), net.stem[1])), 3, 2, "max")
    for kind, c1, a1, c2, a2 in net.blocks:
        y = np_affine(np_conv(np_relu(np_affine(np_conv(x, c1), a1)), c2), a2)
        skip = np_pool(x, 2, 2, "avg") if kind == "down" else x
        if log is not None:
            log.append((y.shape[1:], skip.shape[1:]))
        x = np_relu(np_add_prev(y, skip, pad_at_end))
    pooled = x.mean(axis=(2, 3))
    out = pooled @ net.fc_w.astype(np.float64)
    return out if net.fc_b is None else out + net.fc_b


def run_onnx(blob: bytes, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(["embedding"], {"input": images.astype(np.float32)})[0]


# ---------------------------------------------------------------------------------------------------------------
# Parsing, building and comparing


def test_parse_recovers_the_synthetic_network() -> None:
    tiny = make_tiny(seed=1, fc_bias=False)
    parsed = parse_dat(tiny_dat(tiny))
    assert parsed.loss.margin == pytest.approx(0.04)
    assert parsed.loss.distance_threshold == pytest.approx(0.6)
    assert parsed.input.mean_rgb == tiny.mean
    assert (parsed.input.rows, parsed.input.cols) == (SIZE, SIZE)
    kinds = [type(layer) for layer in parsed.layers]
    assert kinds[:5] == [ConvLayer, AffineLayer, ReluLayer, PoolLayer, TagOrSkip]
    assert kinds[-3:] == [ReluLayer, PoolLayer, FcLayer]
    assert kinds.count(AddPrevLayer) == 4
    check_architecture(parsed, TINY)

    convs = [layer for layer in parsed.layers if isinstance(layer, ConvLayer)]
    written = [tiny.stem[0]] + [c for _, c1, _, c2, _ in tiny.blocks for c in (c1, c2)]
    assert len(convs) == len(written) == 9
    for got, want in zip(convs, written, strict=True):
        np.testing.assert_array_equal(got.filters, want.w)
        np.testing.assert_array_equal(got.bias, want.b)
        assert got.stride == (want.stride, want.stride)
        assert got.padding == (want.pad, want.pad)
    affines = [layer for layer in parsed.layers if isinstance(layer, AffineLayer)]
    np.testing.assert_array_equal(affines[0].gamma, tiny.stem[1].gamma)
    np.testing.assert_array_equal(affines[-1].beta, tiny.blocks[-1][4].beta)
    (fc,) = [layer for layer in parsed.layers if isinstance(layer, FcLayer)]
    np.testing.assert_array_equal(fc.weights, tiny.fc_w)
    assert fc.bias is None
    (global_pool,) = [layer for layer in parsed.layers if isinstance(layer, PoolLayer) and layer.is_global]
    assert global_pool.kind == "avg"


@pytest.mark.parametrize(
    ("con_version", "fc_bias", "input_version"),
    [("con_4", False, 3), ("con_5", True, 2)],
    ids=["as-in-the-real-file", "newer-con-fc-bias-older-input-wrapper"],
)
def test_onnx_matches_the_numpy_reference(con_version: str, fc_bias: bool, input_version: int) -> None:
    tiny = make_tiny(seed=7, fc_bias=fc_bias)
    blob = convert_dlib(tiny_dat(tiny, con_version, input_version), TINY)
    images = np.random.default_rng(3).integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.float32)

    add_prev_shapes: list = []
    want = np_forward(tiny, images, add_prev_shapes)
    got = run_onnx(blob, images)
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # Per image too (batch independence).
    np.testing.assert_allclose(run_onnx(blob, images[1:2]), want[1:2], rtol=1e-4, atol=1e-5)

    # The zero-padding rule really was exercised: (C, H, W) of the main path vs the skip path at each add_prev.
    assert add_prev_shapes == [
        ((4, 8, 8), (4, 8, 8)),
        ((6, 3, 3), (4, 4, 4)),
        ((6, 4, 4), (6, 4, 4)),
        ((6, 1, 1), (6, 2, 2)),
    ]
    # In the graph: the conv path is padded in both down blocks, the skip path only where the channels grow.
    model = onnx.load_from_string(blob)
    pads = [node.name.rsplit("_", 1)[0] for node in model.graph.node if node.op_type == "Pad"]
    assert pads == ["conv6_down_padconv", "conv6_down_padchan", "conv6_down_out_padconv"]


def test_the_comparison_can_tell_where_the_zeros_go() -> None:
    """Zeros at the start (top/left, first channels) instead of the end give a clearly different output."""
    tiny = make_tiny(seed=7, fc_bias=False)
    images = np.random.default_rng(3).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.float32)
    got = run_onnx(convert_dlib(tiny_dat(tiny), TINY), images)
    np.testing.assert_allclose(got, np_forward(tiny, images), rtol=1e-4, atol=1e-5)
    wrong = np_forward(tiny, images, pad_at_end=False)
    assert np.abs(wrong - got).max() > 100 * np.abs(np_forward(tiny, images) - got).max() + 1e-3


def test_graph_interface_and_determinism() -> None:
    dat = tiny_dat(make_tiny(seed=5, fc_bias=False))
    first, second = convert_dlib(dat, TINY), convert_dlib(dat, TINY)
    assert first == second
    model = onnx.load_from_string(first)
    onnx.checker.check_model(model, full_check=True)
    # The reference conversion's metadata and names (CANDIDATES.md, section 1), which the real file reproduces.
    assert model.producer_name == "dlibresnet2onnx-scratch"
    assert not model.HasField("producer_version")
    assert model.graph.name == "tiny_dlib_resnet"
    assert [node.name for node in model.graph.node][:4] == ["to_nchw_1", "sub_mean_3", "scale256_5", "conv4_down_8"]
    assert (model.graph.node[-1].name, model.graph.node[-1].op_type) == ("fc", "MatMul")
    assert [(op.domain, op.version) for op in model.opset_import] == [("", 18)]
    assert model.ir_version <= 8
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", SIZE, SIZE, 3]
    assert out.name == "embedding"
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 5]
    assert len({node.name for node in model.graph.node}) == len(model.graph.node)
    # Building from a fresh parse gives the same proto, not just the same bytes by luck of one call.
    assert build_onnx(parse_dat(dat), TINY).SerializeToString(deterministic=True) == first


def test_architecture_description_must_match_the_file() -> None:
    parsed = parse_dat(tiny_dat(make_tiny(seed=2, fc_bias=False)))
    with pytest.raises(DlibFormatError, match=r"layer 10 .* is add_prev, expected tag/skip"):
        check_architecture(parsed, ResNetArch("wrong", ("down", "res", "res", "down")))
    with pytest.raises(DlibFormatError, match="does not match architecture"):
        build_onnx(parsed, ResNetArch("short", ("res", "down", "res")))
    with pytest.raises(DlibFormatError, match="dlib_face_recognition_resnet_model_v1"):
        build_onnx(parsed)  # the default is the real 29-conv network


def test_the_real_networks_description_has_dlibs_layer_counts() -> None:
    """dlib's anet_type (dnn_face_recognition_ex.cpp): 29 con, 14 residual blocks of which 4 are down blocks."""
    kinds = expected_kinds(DLIB_FACE_RESNET_V1)
    assert Counter(kinds) == {
        "con": 29,
        "affine": 29,
        "relu": 1 + 14 * 2,
        "max_pool": 1,
        "tag/skip": 10 * 1 + 4 * 3,
        "add_prev": 14,
        "avg_pool": 4,
        "avg_pool_everything": 1,
        "fc": 1,
    }
    assert DLIB_FACE_RESNET_V1.blocks == ("res",) * 3 + ("down",) + ("res",) * 3 + (("down",) + ("res",) * 2) * 2 + (
        "down",
    )


@pytest.mark.parametrize("cut", ["truncated", "trailing", "unknown-layer", "no-loss"])
def test_damaged_files_are_refused_with_a_message(cut: str) -> None:
    dat = tiny_dat(make_tiny(seed=4, fc_bias=False))
    if cut == "truncated":
        dat, match = dat[:-7], "truncated"
    elif cut == "trailing":
        dat, match = dat + b"\x01\x00", "unexpected bytes"
    elif cut == "unknown-layer":
        dat, match = dat.replace(enc_str("relu_"), enc_str("prelu"), 1), "unsupported dlib layer 'prelu'"
    else:
        dat, match = dat.replace(b"loss_metric_2", b"loss_metric_9", 1), "expected the loss layer"
    with pytest.raises(DlibFormatError, match=match):
        parse_dat(dat)


def test_command_line_converts_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = make_tiny(seed=6, fc_bias=False)
    dat = tmp_path / "tiny.dat"
    dat.write_bytes(tiny_dat(tiny))
    # The command line knows only the real architecture: a tiny file is refused with the reason.
    assert main([str(dat), str(tmp_path / "out.onnx")]) == 1
    assert "does not match architecture" in capsys.readouterr().err
    assert not (tmp_path / "out.onnx").exists()
