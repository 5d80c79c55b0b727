"""The wire codec and framing: round trips of every allowed type, and rejections by name."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
from collections import OrderedDict, namedtuple

import msgpack
import numpy as np
import pytest

from autograder.sandbox import messages, wire
from autograder.sandbox.wire import Caps, Handle, WireError, decode, encode


def roundtrip(value, **kwargs):
    return decode(encode(value, **kwargs), **kwargs)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, "", "привет",
     b"", b"\x00\xff", [], (), {}, [1, [2, [3]]], (1, (2,), [3]),
     {"a": 1, 2: "b", 1.5: None, None: [], True: (), (1, "x", (2.0, None)): {"n": 1}}],
)
def test_plain_values_round_trip_exactly(value):
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_list_and_tuple_stay_distinct_at_every_depth():
    out = roundtrip([(1, [2, (3,)])])
    assert type(out) is list and type(out[0]) is tuple and type(out[0][1]) is list
    assert type(out[0][1][1]) is tuple


def test_special_floats():
    out = roundtrip([math.nan, math.inf, -math.inf])
    assert math.isnan(out[0]) and out[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("dtype", sorted(wire.NUMPY_DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4)])
def test_numpy_arrays_round_trip_as_writeable_copies(dtype, shape):
    rng = np.random.default_rng(0)
    a = np.asarray(rng.standard_normal(shape) * 10).astype(dtype)
    out = roundtrip(a)
    assert type(out) is np.ndarray and out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable and out.flags.c_contiguous


def test_non_contiguous_and_big_endian_arrays():
    a = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2]
    out = roundtrip(a)
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.dtype("int32") and out.dtype.isnative


@pytest.mark.parametrize("scalar", [np.float32(1.5), np.int8(-3), np.uint64(2**64 - 1),
                                    np.bool_(True), np.complex64(1 + 2j), np.float16(0.5)])
def test_numpy_scalars_stay_numpy_scalars(scalar):
    out = roundtrip(scalar)
    assert type(out) is type(scalar) and out == scalar


def test_subclasses_of_plain_types_are_sent_as_the_base_type():
    Point = namedtuple("Point", "x y")
    out = roundtrip([OrderedDict(a=1), Point(1, 2), bytearray(b"ab")])
    assert out == [{"a": 1}, (1, 2), b"ab"]
    assert [type(v) for v in out] == [dict, tuple, bytes]


def test_handles_round_trip():
    h = Handle(3, 17, "__main__.Net")
    assert roundtrip({"model": h}) == {"model": h}


def test_torch_tensors_round_trip_detached_on_cpu():
    torch = pytest.importorskip("torch")
    values = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        "bool": torch.tensor([[True, False]]),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
        "c64": torch.tensor([1 + 2j], dtype=torch.complex64),
        "grad": torch.ones(2, requires_grad=True) * 2,
        "view": torch.arange(10.0)[2:8:2],
        "param": torch.nn.Parameter(torch.ones(2)),
    }
    out = roundtrip(values)
    for key, t in values.items():
        got = out[key]
        assert type(got) is torch.Tensor, key
        assert got.dtype == t.dtype and got.shape == t.shape and not got.requires_grad, key
        assert torch.equal(got, t.detach()), key
    out["f32"][0, 0] = 100.0  # writeable


def test_tensor_bool_bytes_are_normalised():
    pytest.importorskip("torch")
    tree = [wire.TAG_TENSOR, "bool", [wire.TAG_TUPLE, 2], b"\x00\x07"]
    out = decode(msgpack.packb(tree, use_bin_type=True))
    assert out.tolist() == [False, True]


def test_encoder_does_not_import_numpy_or_torch():
    code = ("import sys; from autograder.sandbox import wire; "
            "wire.decode(wire.encode([1, 'a', (2.0,), {'k': b'v'}])); "
            "print('numpy' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "False"]


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("value, named", [
    (object(), "object"),
    (1 + 2j, "complex"),
    ({1, 2}, "set"),
    (2**64, "int outside"),
    (-(2**63) - 1, "int outside"),
    (np.array([object()], dtype=object), "dtype object"),
    (np.array(["a"]), "dtype <U1"),
    (np.zeros(2, dtype=[("a", "i4")]), "dtype"),
    (np.datetime64("2024-01-01"), "datetime64"),
    ({frozenset(): 1}, "dict key of type frozenset"),
    (lambda: 1, "function"),
])
def test_unsupported_values_are_refused_by_name(value, named):
    with pytest.raises(WireError, match=named):
        encode(value)


def test_fallback_turns_unsupported_values_into_handles():
    made = []

    def fallback(obj):
        made.append(obj)
        return Handle(1, len(made), type(obj).__name__)

    marker = object()
    out = decode(encode([1, marker, {"x": {2, 3}}], fallback=fallback))
    assert out == [1, Handle(1, 1, "object"), {"x": Handle(1, 2, "set")}]


def test_size_cap_on_encode_and_decode():
    with pytest.raises(WireError, match="exceeds the cap"):
        encode(np.zeros(1000), caps=Caps(max_bytes=4000))
    data = encode(b"x" * 5000)
    with pytest.raises(WireError, match="exceeds the cap"):
        decode(data, caps=Caps(max_bytes=4000))


def test_depth_cap_on_encode_and_decode():
    deep: list = []
    for _ in range(70):
        deep = [deep]
    with pytest.raises(WireError, match="nesting deeper"):
        encode(deep)
    tree: list = [wire.TAG_LIST]
    for _ in range(70):
        tree = [wire.TAG_LIST, tree]
    with pytest.raises(WireError, match="nesting deeper"):
        decode(msgpack.packb(tree))


def test_cycles_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(WireError, match="nesting deeper"):
        encode(loop)


def test_element_cap_on_encode_and_decode():
    with pytest.raises(WireError, match="more than 100 elements"):
        encode(list(range(200)), caps=Caps(max_elements=100))
    data = encode(list(range(200)))
    with pytest.raises(WireError, match="more than 100 elements|max_array_len"):
        decode(data, caps=Caps(max_elements=100))


def test_many_tiny_containers_are_bounded_by_the_element_cap():
    # 1-byte msgpack arrays would expand ~60x in memory without an element cap.
    group = [wire.TAG_LIST] + [[wire.TAG_TUPLE]] * 1_000  # each array is under the cap
    tree = [wire.TAG_LIST] + [group] * 50
    with pytest.raises(WireError, match="more than 10000 elements"):
        decode(msgpack.packb(tree), caps=Caps(max_elements=10_000))
    tree = [wire.TAG_LIST] + [[wire.TAG_LIST, [wire.TAG_TUPLE]]] * 5_000
    with pytest.raises(WireError, match="more than 10000 elements"):
        decode(msgpack.packb(tree), caps=Caps(max_elements=10_000))


@pytest.mark.parametrize("tree, named", [
    ([99, 1], "unknown node tag 99"),
    ([], "untagged array"),
    (["list", 1], "untagged array"),
    ({"a": 1}, "max_map_len"),
    ({}, "maps are not part"),
    ([wire.TAG_NDARRAY, "object", [wire.TAG_TUPLE, 1], b"12345678"], "dtype 'object'"),
    ([wire.TAG_NDARRAY, "float64", [wire.TAG_TUPLE, 2], b"1234"], "needs 16"),
    ([wire.TAG_NDARRAY, "float64", [wire.TAG_TUPLE, -1], b""], "invalid size"),
    ([wire.TAG_NDARRAY, "float64", [wire.TAG_LIST, 1], b"12345678"], "shape must be"),
    ([wire.TAG_NPSCALAR, "float64", b"123"], "needs 8"),
    ([wire.TAG_TENSOR, "qint8", [wire.TAG_TUPLE, 1], b"1"], "dtype 'qint8'"),
    ([wire.TAG_HANDLE, 1, "x", "T"], "handle node"),
    ([wire.TAG_DICT, "a"], "odd number"),
    ([wire.TAG_DICT, [wire.TAG_LIST], 1], "dict key of type list"),
    ([wire.TAG_DICT, "a", 1, "a", 2], "duplicate keys"),
])
def test_malformed_trees_are_refused_by_name(tree, named):
    with pytest.raises(WireError, match=named):
        decode(msgpack.packb(tree, use_bin_type=True))


@pytest.mark.parametrize("data", [
    b"",  # nothing
    b"\x93\x00\x01",  # truncated array
    msgpack.packb(1) + b"\x01",  # trailing bytes
    msgpack.packb(msgpack.ExtType(5, b"x")),  # ext type
    msgpack.packb(msgpack.Timestamp(1)),  # timestamp ext
    b"\xa2\xff\xfe",  # invalid UTF-8 string
])
def test_malformed_bytes_are_refused(data):
    with pytest.raises(WireError):
        decode(data)


def test_decoding_never_unpickles():
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(WireError):
        decode(pickle.dumps(Boom()))


# ----------------------------------------------------------------------------- framing


def test_frames_round_trip_through_a_stream():
    stream = io.BytesIO()
    for payload in (b"", b"abc", b"x" * 100_000):
        wire.write_frame(stream, payload)
    stream.seek(0)
    assert [wire.read_frame(stream, 1 << 20) for _ in range(3)] == [b"", b"abc", b"x" * 100_000]
    with pytest.raises(EOFError):
        wire.read_frame(stream, 1 << 20)


def test_oversized_header_is_rejected_before_the_body_is_read():
    class Counting(io.BytesIO):
        def read(self, n=-1):
            assert n <= 8, "body read attempted"
            return super().read(n)

    stream = Counting(struct.pack(">Q", 1 << 40) + b"rest")
    with pytest.raises(WireError, match="more than the cap"):
        wire.read_frame(stream, 1 << 20)


@pytest.mark.parametrize("data", [b"\x00\x00\x00", struct.pack(">Q", 10) + b"short"])
def test_truncated_frames_are_errors(data):
    with pytest.raises(WireError, match="truncated"):
        wire.read_frame(io.BytesIO(data), 1 << 20)


def test_frame_buffer_splits_frames_fed_in_pieces():
    stream = io.BytesIO()
    for payload in (b"one", b"", b"three" * 1000):
        wire.write_frame(stream, payload)
    data = stream.getvalue()
    buf = wire.FrameBuffer(1 << 20)
    frames = []
    for i in range(0, len(data), 7):
        buf.feed(data[i:i + 7])
        while (frame := buf.pop()) is not None:
            frames.append(frame)
    assert frames == [b"one", b"", b"three" * 1000] and buf.pending == 0


def test_frame_buffer_rejects_an_oversized_header_at_once():
    buf = wire.FrameBuffer(100)
    with pytest.raises(WireError, match="more than the cap"):
        buf.feed(struct.pack(">Q", 101))


# ----------------------------------------------------------------------------- messages


def test_messages_round_trip_with_enums():
    msg = messages.CellDone(4, messages.CellStatus.ERROR, "ValueError", "bad", "tb", ["n"])
    out = messages.decode_message(messages.encode_message(msg), messages.REPLIES)
    assert out == msg and out.status is messages.CellStatus.ERROR


def test_every_message_field_annotation_has_a_check():
    from dataclasses import fields

    for cls in [*messages.REQUESTS.values(), *messages.REPLIES.values()]:
        for f in fields(cls):
            assert str(f.type) in messages._CHECKS, (cls.kind, f.name, f.type)


@pytest.mark.parametrize("body, named", [
    ({"kind": "nope", "id": 1}, "unexpected message kind 'nope'"),
    ({"kind": "value", "id": "1", "data": 1, "record": {}}, "value.id has the wrong type"),
    ({"kind": "value", "id": 1, "data": 1, "record": []}, "value.record has the wrong type"),
    ({"kind": "value", "id": 1}, "fields"),
    ({"kind": "value", "id": 1, "data": 1, "extra": 2}, "fields"),
    ({"kind": "cell_done", "id": 1, "status": "timeout?", "error_type": "",
      "error_message": "", "traceback": "", "notes": []}, "status has the wrong type"),
    ([1, 2], "must be a dict"),
])
def test_bad_messages_are_protocol_errors(body, named):
    with pytest.raises(messages.ProtocolError, match=named):
        messages.decode_message(encode(body), messages.REPLIES)


def test_a_request_kind_is_not_accepted_as_a_reply():
    data = messages.encode_message(messages.Describe(3, ["x"]))
    with pytest.raises(messages.ProtocolError, match="'describe'"):
        messages.decode_message(data, messages.REPLIES)
