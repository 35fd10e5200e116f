"""Reading a Rust writer's object from Python: every field type the schema
describes, lazily and in place."""

import gc
import json
import subprocess
import sys

import numpy as np
import pytest

import shmstate


def test_every_field_type(writer):
    r = shmstate.Reader(writer.name)
    s = r.read()
    assert s.generation == 1 and r.generation == 1
    assert s.type_name == "Config" and r.type_name == "Config"
    assert s.seq == 1 and s.port == 8001
    assert s.hosts[0] == "alpha.internal"
    assert s.hosts[-1] == "a host name longer than eight bytes"  # out of line
    assert list(s.hosts) == ["alpha.internal", "a host name longer than eight bytes"]
    assert len(s.hosts) == 2 and s.hosts[0:1] == ["alpha.internal"]
    assert s.limits["max_conns"] == 100 and s.limits.get("nope", 7) == 7
    assert sorted(s.limits.keys()) == ["max_conns", "max_rps"] and "max_rps" in s.limits
    assert dict(s.limits.items()) == {"max_conns": 100, "max_rps": 2500}
    assert s.ordered[2] == "two" and list(s.ordered) == [1, 2]
    assert "green" in s.tags and list(s.tags) == ["blue", "green"]
    assert s.tls is None  # odd generations have no TLS
    assert s.maybe is None
    assert s.mode.variant == "Replica" and s.mode.of == "primary-1"
    assert s.modes[0].variant == "Primary"
    assert (s.modes[1].variant, s.modes[1][0], s.modes[1][1]) == ("Weighted", 7, 0.5)
    assert s.pair[0] == 9 and s.pair[1] == "nine"
    assert s.boxed == "in a box"
    n = s.numbers
    assert (n.u8_, n.u16_, n.u32_, n.u64_, n.u128_) == (255, 2**16 - 1, 2**32 - 1, 2**64 - 1, 2**128 - 1)
    assert (n.i8_, n.i16_, n.i32_, n.i64_, n.i128_) == (-128, -(2**15), -(2**31), -(2**63), -(2**127))
    assert (n.f32_, n.f64_, n.bool_, n.char_, n.usize_, n.isize_) == (1.5, -2.25, True, "é", 123, -123)
    assert (s.timeout.secs, s.timeout.nanos) == (3, 500)
    assert s.addr.variant == "V4" and s.ip.variant == "V6"
    assert s.unit is None
    with pytest.raises(AttributeError, match="no field"):
        s.nope
    with pytest.raises(IndexError):
        s.hosts[2]
    with pytest.raises(KeyError):
        s.limits["nope"]


def test_even_generation_has_tls(writer):
    writer.send("pub")
    s = shmstate.Reader(writer.name).read()
    assert s.generation == 2 and s.tls.cert == "/etc/cert.pem" and s.tls.verify is True


def test_to_python_equals_dump_json(writer, bins):
    s = shmstate.Reader(writer.name).read()
    dumped = subprocess.run([bins["cli"], "dump", writer.name, "--json"], check=True, capture_output=True, text=True)
    assert s.to_python() == json.loads(dumped.stdout)
    assert s.numbers.to_python() == json.loads(dumped.stdout)["numbers"]


def test_numpy_views_are_zero_copy_and_read_only(writer):
    s = shmstate.Reader(writer.name).read()
    w = np.asarray(s.weights)
    assert w.dtype == np.float64 and w.tolist() == [1.0 + i for i in range(8)]
    assert w.flags.writeable is False and w.flags.owndata is False
    # The base chain ends at the view, which holds the pin.
    assert isinstance(w.base, memoryview) and isinstance(w.base.obj, shmstate.View)
    with pytest.raises(ValueError):
        w[0] = 5.0
    with pytest.raises(ValueError):
        w.setflags(write=True)
    # Two arrays of one view point at the same bytes: no copy.
    assert np.asarray(s.weights).__array_interface__["data"][0] == w.__array_interface__["data"][0]
    assert np.asarray(s.ids).dtype == np.uint32 and np.asarray(s.ids).tolist() == [1, 2, 3, 2**32 - 1]
    assert np.asarray(s.deltas).dtype == np.int16 and np.asarray(s.deltas).tolist() == [-1, 0, 1, -(2**15)]
    assert np.asarray(s.flags).dtype == np.bool_ and np.asarray(s.flags).tolist() == [True, False, True]
    assert np.asarray(s.matrix).dtype == np.float32 and np.asarray(s.matrix).tolist() == [1.0, 2.0, 3.0, 4.5]
    blob = memoryview(s.blob)
    assert blob.readonly and blob.format == "B" and blob.tobytes() == b"hello\x00world"
    with pytest.raises(BufferError):
        memoryview(s.hosts)  # strings are not plain numbers


def test_views_stay_valid_after_the_reader_is_gone(writer):
    r = shmstate.Reader(writer.name)
    s = r.read()
    weights = np.asarray(s.weights)
    mode = s.mode
    del r, s
    gc.collect()
    for _ in range(20):
        writer.send("pub")  # the writer reuses every slot nobody pins
    gc.collect()
    # Still generation 1's bytes.
    assert weights.tolist() == [1.0 + i for i in range(8)] and mode.of == "primary-1"
    fresh = shmstate.Reader(writer.name).read()
    assert fresh.generation == 21 and np.asarray(fresh.weights)[0] == 21.0


def test_unchanged_read_is_the_same_snapshot_and_with_releases(writer):
    r = shmstate.Reader(writer.name)
    a = r.read()
    assert r.read() is a
    weights = np.asarray(a.weights)
    with r.read() as s:
        assert s is a and s.port == 8001
    assert a.released
    with pytest.raises(shmstate.Released):
        a.port
    assert weights[1] == 2.0  # views keep their own pin
    b = r.read()
    assert b is not a and b.generation == 1 and not b.released
    writer.send("pub")
    assert r.read().generation == 2


def test_many_snapshots_held_at_once(writer):
    r = shmstate.Reader(writer.name)
    held = []
    for g in range(2, 30):
        writer.send("pub")
        s = r.read()
        assert s.generation == g
        held.append((g, np.asarray(s.weights)))
    for g, w in held:
        assert w[0] == float(g)


def test_errors_are_python_exceptions(name):
    with pytest.raises(shmstate.NotFound) as e:
        shmstate.Reader(name)
    assert isinstance(e.value, shmstate.Error) and isinstance(e.value, FileNotFoundError)
    assert name in str(e.value)
    with pytest.raises(shmstate.InvalidName):
        shmstate.Reader("bad/name")


def test_tools(writer, bins):
    info = shmstate.inspect(writer.name)
    assert info["type"] == "Config" and info["generation"] == 1 and info["writer_alive"]
    assert writer.name in [o["name"] for o in shmstate.list()]
    stub = shmstate.stubgen(writer.name)
    compile(stub, "config.pyi", "exec")
    assert "class Config:" in stub and "    weights: Sequence[float]" in stub and "class Snapshot:" in stub
    schema = subprocess.run([bins["cli"], "schema", writer.name], check=True, capture_output=True, text=True)
    assert json.loads(shmstate.schema(writer.name)) == json.loads(schema.stdout)


def test_command_line(writer, tmp_path, other_name):
    out = tmp_path / "config.pyi"
    done = subprocess.run([sys.executable, "-m", "shmstate", "stubgen", writer.name, "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == shmstate.stubgen(writer.name)
    done = subprocess.run([sys.executable, "-m", "shmstate", "inspect", writer.name], capture_output=True, text=True)
    assert json.loads(done.stdout)["type"] == "Config"
    done = subprocess.run([sys.executable, "-m", "shmstate", "inspect", other_name], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("NotFound: ")
