"""shmstate.MapReader: a map object written by a Rust MapWriter in another
process (examples/map_fixture.rs), read by name without its Rust types:
get, len, iteration, items(prefix=...), a snapshot held across commits, and
a corrupted pages file as an exception."""

import os
import subprocess

import pytest

import shmstate


class MapWriter:
    """`map_fixture serve[-int] NAME N`, driven line by line on stdin."""

    def __init__(self, exe, name, n, mode="serve"):
        self.name = name
        self.proc = subprocess.Popen([exe, mode, name, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.generation = self._answer("committed")

    def _answer(self, word):
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"map fixture said {line!r} (exit {self.proc.poll()})")
        return int(line.split()[1]) if word == "committed" else None

    def send(self, *commands):
        for c in commands:
            self.proc.stdin.write(c + "\n")
            self.proc.stdin.flush()
            self._answer("committed" if c == "commit" else "staged")

    def commit(self):
        self.proc.stdin.write("commit\n")
        self.proc.stdin.flush()
        self.generation = self._answer("committed")
        return self.generation

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def item(i):
    """What the fixture stores for id `i`, as plain Python values."""
    return {
        "id": i,
        "name": f"item {i}",
        "tags": [f"t{t}" for t in range(i % 3)],
        "score": i / 2 if i % 2 == 0 else None,
    }


@pytest.fixture
def map_name(name):
    yield name
    os.system(f"rm -f /dev/shm/shmstate.{name}.pages")


@pytest.fixture
def string_map(bins, map_name):
    w = MapWriter(bins["map_fixture"], map_name, 300)
    yield w
    w.close()


def test_get_len_iteration_and_prefix(string_map):
    r = shmstate.MapReader(string_map.name)
    assert (r.key_type, r.value_type) == ("String", "Item")
    assert len(r) == 300
    assert r.get("k0042") == item(42)
    assert r["k0299"] == item(299)
    assert r.get("nope") is None and r.get("nope", 5) == 5
    with pytest.raises(KeyError):
        r["nope"]
    assert "k0001" in r and "x" not in r
    assert list(r) == [f"k{i:04}" for i in range(300)]
    assert r.items(prefix="k012") == [(f"k{i:04}", item(i)) for i in range(120, 130)]
    assert r.items(prefix="zz") == []
    assert len(r.items()) == 300
    with pytest.raises(TypeError):
        r.get(7)


def test_commits_are_seen_and_a_held_snapshot_keeps_its_generation(string_map):
    r = shmstate.MapReader(string_map.name)
    with r.read() as held:
        g = held.generation
        string_map.send("set k0005 9999", "del k0006", "set new 1")
        assert string_map.commit() > g
        # The latest generation, read beside the held one.
        assert r.get("k0005") == item(9999) and r.get("k0006") is None and len(r) == 300
        # Many more commits: the writer may not reuse what the held generation reaches.
        for round in range(20):
            string_map.send(*[f"set k{i:04} {1000 + round}" for i in range(0, 300, 7)])
            string_map.commit()
        assert held.generation == g
        assert held["k0005"] == item(5) and held["k0006"] == item(6) and "new" not in held
        assert held.items(prefix="k000") == [(f"k{i:04}", item(i)) for i in range(10)]
        assert len(held) == 300
    assert held.released
    with pytest.raises(shmstate.Released):
        held.get("k0005")
    assert r.get("k0007") == item(1019)


def test_integer_keys(bins, map_name):
    w = MapWriter(bins["map_fixture"], map_name, 10, mode="serve-int")
    try:
        r = shmstate.MapReader(map_name)
        assert r.key_type == "i64"
        assert list(r) == list(range(-5, 5))
        assert r[-3] == item(3)
        with pytest.raises(TypeError):
            r.items(prefix="1")
        with pytest.raises(TypeError):
            r.get("1")
        with pytest.raises(shmstate.Invalid):
            r.get(1 << 70)
    finally:
        w.close()


def test_a_corrupted_pages_file_is_an_exception(string_map):
    r = shmstate.MapReader(string_map.name)
    path = f"/dev/shm/shmstate.{string_map.name}.pages"
    size = os.path.getsize(path)
    # Junk over every node and value (past the header and the schema block).
    with open(path, "r+b") as f:
        f.seek(2048)
        f.write(b"\xa5" * (size - 2048))
    with pytest.raises(shmstate.Error) as e:
        for k in range(300):
            r.get(f"k{k:04}")
        r.items()
    assert string_map.name in str(e.value)
    # A fresh reader refuses a pages file without its value schema.
    with open(path, "r+b") as f:
        f.seek(12)
        f.write(b"\0\0\0\0")
    with pytest.raises(shmstate.Corrupt, match="no value schema"):
        shmstate.MapReader(string_map.name)


def test_a_missing_map(map_name):
    with pytest.raises(shmstate.NotFound):
        shmstate.MapReader(map_name)
