"""Bad bytes are exceptions, never a crash (DESIGN.md invariant 7): 300
corrupted payloads and 100 corrupted or truncated headers, each read by a
fresh Reader and walked whole, in a child interpreter so that a crash fails
the test instead of ending the run."""

import shutil

import shmstate

WALK = r'''
import os, random, sys
import numpy as np
import shmstate

def walk(v, depth=0):
    """Touches every field, item and buffer of a view."""
    if not isinstance(v, shmstate.View) or depth > 64:
        return
    try:
        np.asarray(v).sum()
    except BufferError:
        pass
    if v.variant if "variant" in dir(v) else False:
        pass
    names = [n for n in dir(v) if n not in ("to_python", "type_name", "keys", "values", "items", "get", "variant")]
    if names:
        for n in names:
            walk(getattr(v, n), depth + 1)
    else:
        try:
            items = list(v.values()) if "values" in dir(v) else list(v)
        except TypeError:
            items = []
        for x in items:
            walk(x, depth + 1)
    v.to_python()
'''


def test_300_corrupted_payloads(writer, run_python):
    slot = next(s for s in shmstate.inspect(writer.name)["slot_table"] if s["current"])
    script = WALK + r'''
name, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = f"/dev/shm/shmstate.{name}"
fd = os.open(path, os.O_RDWR)
original = os.pread(fd, length, offset)
counts = {"ok": 0}
for seed in range(300):
    rng = random.Random(seed)
    data = bytearray(original)
    how = seed % 4
    if how == 0:  # a few flipped bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(length)] ^= 1 << rng.randrange(8)
    elif how == 1:  # a run of garbage
        at = rng.randrange(length)
        n = rng.randint(1, 64)
        data[at:at + n] = bytes(rng.randrange(256) for _ in range(len(data[at:at + n])))
    elif how == 2:  # a word set to an extreme
        at = rng.randrange(0, length - 4, 4)
        data[at:at + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\0\0\0\0"])
    else:  # the tail (the root and its relative pointers) scrambled
        for i in range(max(0, length - 64), length):
            if rng.random() < 0.3:
                data[i] = rng.randrange(256)
    os.pwrite(fd, bytes(data), offset)
    try:
        snap = shmstate.Reader(name).read()
    except shmstate.Error as e:
        counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
        continue
    # Validated: every step of the walk must succeed.
    walk(snap.value)
    snap.to_python()
    counts["ok"] += 1
os.pwrite(fd, original, offset)
print(counts)
'''
    done = run_python(script, writer.name, str(slot["offset"]), str(slot["len"]))
    assert done.returncode == 0, done.stderr
    counts = eval(done.stdout)  # noqa: S307 - our own child's dict
    assert sum(counts.values()) == 300
    assert counts.get("Invalid", 0) > 100, counts
    # The object is whole again.
    assert shmstate.Reader(writer.name).read().hosts[0] == "alpha.internal"


def test_corrupted_and_truncated_headers(writer, run_python, name):
    copy = name + ".copy"
    for suffix in ("", ".readers"):
        shutil.copyfile(f"/dev/shm/shmstate.{writer.name}{suffix}", f"/dev/shm/shmstate.{copy}{suffix}")
    script = WALK + r'''
name = sys.argv[1]
path = f"/dev/shm/shmstate.{name}"
with open(path, "rb") as f:
    original = f.read()
counts = {"ok": 0}
for seed in range(100):
    rng = random.Random(seed)
    data = bytearray(original)
    if seed % 3 == 0:
        data = data[:rng.randrange(len(data) // 2)]  # torn: truncated
    else:
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(512)] = rng.randrange(256)  # the header and slot table
    with open(path, "wb") as f:
        f.write(data)
    try:
        snap = shmstate.Reader(name).read()
    except shmstate.Error as e:
        counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
        continue
    walk(snap.value)
    counts["ok"] += 1
print(counts)
'''
    try:
        done = run_python(script, copy)
        assert done.returncode == 0, done.stderr
        counts = eval(done.stdout)  # noqa: S307 - our own child's dict
        assert sum(counts.values()) == 100 and counts["ok"] < 100, counts
    finally:
        for suffix in ("", ".readers"):
            try:
                shutil.os.unlink(f"/dev/shm/shmstate.{copy}{suffix}")
            except FileNotFoundError:
                pass
