"""Python writers: values published from Python are read by a Rust
`Reader<Config>` zero-copy and validated, and by Python readers."""

import dataclasses
import subprocess

import numpy as np
import pytest

import shmstate


@pytest.fixture(scope="module")
def schema_file(bins, tmp_path_factory):
    """Config's schema as its Rust program exports it."""
    path = tmp_path_factory.mktemp("schema") / "config.schema.json"
    out = subprocess.run([bins["fixture"], "schema"], check=True, capture_output=True, text=True)
    path.write_text(out.stdout)
    return path


def check(bins, name):
    """What a Rust `Reader<Config>` of `name` reads, as a dict."""
    out = subprocess.run([bins["fixture"], "check", name], check=True, capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for line in out.splitlines() for kv in line.split(" "))


def value(seq, weights):
    return {
        "seq": seq,
        "port": 7000 + seq,
        "hosts": ["h1", "a-host-name-longer-than-eight-bytes"],
        "limits": {"max_conns": 42},
        "ordered": {1: "one"},
        "tags": ["x"],
        "tls": {"cert": "/c.pem", "verify": False},
        "maybe": 5,
        "mode": {"Replica": {"of": "p0"}},
        "modes": ["Primary", {"Weighted": [1, 0.25]}],
        "weights": weights,
        "ids": np.arange(4, dtype=np.uint32),
        "deltas": [-5, 5],
        "blob": b"\x00\x01",
        "flags": [True],
        "matrix": (0.5, 1.5, 2.5, 3.5),
        "pair": [1, "one"],
        "boxed": "b",
        "numbers": {
            "u8_": 1, "u16_": 2, "u32_": 3, "u64_": 2**64 - 1, "u128_": 2**128 - 1, "i8_": -1, "i16_": -2,
            "i32_": -3, "i64_": -(2**63), "i128_": -(2**127), "f32_": 0.5, "f64_": 1e300, "bool_": False,
            "char_": "z", "usize_": 7, "isize_": -7,
        },
        "timeout": {"secs": 1, "nanos": 2},
        "addr": "10.0.0.1:53",
        "ip": "127.0.0.1",
        "unit": None,
    }


def test_python_writer_rust_reader(bins, name, schema_file):
    with shmstate.Writer.open(name, schema=schema_file) as w:
        assert w.type_name == "Config"
        weights = np.linspace(0.0, 1.0, 1001)
        g = w.publish(value(1, weights))
        assert g == 1
        seen = check(bins, name)
        assert seen["generation"] == "1" and seen["port"] == "7001" and seen["hosts"] == "h1,a-host-name-longer-than-eight-bytes"
        assert seen["weights_len"] == "1001" and float(seen["weights_sum"]) == pytest.approx(weights.sum())
        assert seen["mode"] == "Replica(p0)" and seen["tls"] == "/c.pem" and seen["max_conns"] == "42"
        s = shmstate.Reader(name).read()
        assert s.numbers.u128_ == 2**128 - 1 and s.numbers.i64_ == -(2**63) and s.ip.variant == "V4"
        assert np.array_equal(np.asarray(s.weights), weights) and np.asarray(s.ids).tolist() == [0, 1, 2, 3]
        assert s.maybe == 5 and s.modes[1][1] == 0.25 and memoryview(s.blob).tobytes() == b"\x00\x01"
        assert w.publish(value(2, [1.0])) == 2 and check(bins, name)["seq"] == "2"


def test_round_trip_of_a_rust_value(writer, other_name):
    """A Rust value's `to_python()` published from Python reads back equal."""
    src = shmstate.Reader(writer.name).read()
    with shmstate.Writer.open(other_name, schema=shmstate.schema(writer.name)) as w:
        w.publish(src.to_python())
        assert shmstate.Reader(other_name).read().to_python() == src.to_python()
        # Views publish as their values too.
        w.publish({**src.to_python(), "mode": src.modes[1]})
        assert shmstate.Reader(other_name).read().mode.variant == "Weighted"


def test_dataclasses(name, schema_file):
    @dataclasses.dataclass
    class Tls:
        cert: str
        verify: bool

    v = value(3, [2.0])
    v["tls"] = Tls("/d.pem", True)
    with shmstate.Writer.create(name, schema_file) as w:
        w.publish(v)
    assert shmstate.Reader(name).read().tls.cert == "/d.pem"


def test_bad_values_publish_nothing(name, schema_file):
    with shmstate.Writer.open(name, schema=schema_file) as w:
        w.publish(value(1, [1.0]))
        bad = value(2, [1.0])
        bad["port"] = 70000
        with pytest.raises(shmstate.Invalid, match="port"):
            w.publish(bad)
        missing = value(2, [1.0])
        del missing["hosts"]
        with pytest.raises(shmstate.Invalid, match="hosts"):
            w.publish(missing)
        with pytest.raises(TypeError):
            w.publish({**value(2, [1.0]), "seq": object()})
        with pytest.raises(shmstate.Invalid):
            w.publish({**value(2, [1.0]), "weights": np.zeros((2, 2))})
    assert shmstate.Reader(name).read().generation == 1


def test_writer_errors(writer, other_name, schema_file):
    with pytest.raises(shmstate.WriterBusy):
        shmstate.Writer.open(writer.name)
    with pytest.raises(shmstate.NotFound):
        shmstate.Writer.open(other_name)
    with pytest.raises(shmstate.Invalid):
        shmstate.Writer.open(other_name, schema='{"root": 0, "types": []}')
    shmstate.Writer.create(other_name, schema_file).close()
    with pytest.raises(shmstate.AlreadyExists):
        shmstate.Writer.create(other_name, schema_file)
    w = shmstate.Writer.open(other_name)
    w.close()
    with pytest.raises(shmstate.Error, match="closed"):
        w.publish({})


def test_rust_reader_follows_a_python_writer_started_later(bins, name, schema_file):
    """The object's next writer can be Python: a Rust writer's object taken over."""
    with shmstate.Writer.open(name, schema=schema_file) as w:
        w.publish(value(1, [1.0]))
    with shmstate.Writer.open(name) as w:  # the stored schema, writer gone
        assert w.publish(value(9, [3.0, 4.0])) == 2
    assert check(bins, name)["weights_sum"] == "7"


def test_numeric_buffers_of_each_dtype_round_trip(name, schema_file):
    """numpy arrays go in whole (one copy, the encoder's vector fast path):
    each dtype that fits the field's type reads back equal."""
    cases = [
        ("weights", np.linspace(-1.0, 1.0, 10_001), np.float64),
        ("weights", np.array([0.5, -2.25, 3e38], dtype=np.float32), np.float64),
        ("ids", np.array([0, 1, 2**32 - 1], dtype=np.uint32), np.uint32),
        ("ids", np.arange(300, dtype=np.int64), np.uint32),
        ("ids", np.arange(200, dtype=np.uint8), np.uint32),
        ("deltas", np.array([-(2**15), -1, 0, 2**15 - 1], dtype=np.int16), np.int16),
        ("deltas", np.array([-128, 127], dtype=np.int8), np.int16),
        ("blob", np.arange(256, dtype=np.uint8), np.uint8),
        ("blob", bytes(range(256)), np.uint8),
    ]
    with shmstate.Writer.open(name, schema=schema_file) as w:
        for field, array, stored in cases:
            w.publish({**value(1, [1.0]), field: array})
            got = np.asarray(getattr(shmstate.Reader(name).read(), field))
            want = np.frombuffer(array, dtype=np.uint8) if isinstance(array, bytes) else array
            assert got.dtype == stored and np.array_equal(got, want.astype(stored)), (field, array.dtype if hasattr(array, "dtype") else "bytes")


def test_a_buffer_of_the_wrong_dtype_is_a_clear_error(name, schema_file):
    with shmstate.Writer.open(name, schema=schema_file) as w:
        w.publish(value(1, [1.0]))
        # Floats for a vector of u32: the first element that is no integer.
        with pytest.raises(shmstate.Invalid, match=r"\.ids\[0\]: expected an integer for u32, found 0.5"):
            w.publish({**value(2, [1.0]), "ids": np.array([0.5, 1.0])})
        # Integers out of the field's range.
        with pytest.raises(shmstate.Invalid, match=r"\.deltas\[1\]: 40000 is out of range for i16"):
            w.publish({**value(2, [1.0]), "deltas": np.array([1, 40000], dtype=np.int32)})
        with pytest.raises(shmstate.Invalid, match=r"\.ids\[2\]: -1 is out of range for u32"):
            w.publish({**value(2, [1.0]), "ids": np.array([1, 2, -1], dtype=np.int64)})
        # A dtype that is no plain number.
        with pytest.raises(TypeError, match="cannot publish a ndarray"):
            w.publish({**value(2, [1.0]), "weights": np.array([1 + 2j])})
    assert shmstate.Reader(name).read().generation == 1
