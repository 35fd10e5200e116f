"""A writer that changes the object's type under the name: a following
reader reads the new type (no silently stale reader: DESIGN.md), old views
keep the old one; a reader that does not follow is told."""

import gc
import threading
import time

import numpy as np
import pytest

import shmstate


def test_type_change_is_followed(writer):
    r = shmstate.Reader(writer.name)
    old = r.read()
    weights = np.asarray(old.weights)
    g = old.generation
    writer.send("v2")
    new = r.wait_newer(g, timeout=60)
    s = r.read()
    assert s.generation == new and s.type_name == "ConfigV2" and r.type_name == "ConfigV2"
    assert s.label.startswith("v2 #") and s.port > 9000
    # The old snapshot and its views read the old object, with the old schema.
    assert old.type_name == "Config" and old.hosts[0] == "alpha.internal" and weights[0] == 1.0
    g = writer.send("pub")
    s = r.read()
    assert s.generation == g and s.type_name == "ConfigV2"


def test_type_change_while_a_thread_reads(writer):
    r = shmstate.Reader(writer.name)
    seen = set()
    stop = threading.Event()
    errors = []

    def loop():
        try:
            while not stop.is_set():
                s = r.read()
                seen.add(s.type_name)
                if s.type_name == "Config":
                    assert s.hosts[0] == "alpha.internal"
                else:
                    assert s.label.startswith("v2")
                    stop.set()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=loop)
    t.start()
    for _ in range(5):
        writer.send("pub")
    writer.send("v2")
    t.join(timeout=60)
    stop.set()
    assert not errors and seen == {"Config", "ConfigV2"}


def test_no_follow_raises_replaced(writer):
    r = shmstate.Reader(writer.name, follow=False)
    r.read()
    writer.send("v2")
    with pytest.raises((shmstate.Replaced, shmstate.Removed)):
        r.wait_newer(r.generation, timeout=60)
        r.read()


def read_until(r, done):
    """The first snapshot for which done(snapshot) holds, waiting for each
    newer generation (a 60 s guard against a hang, not a timing)."""
    for _ in range(600):
        s = r.read()
        if done(s):
            return s
        try:
            r.wait_newer(s.generation, timeout=0.1)
        except shmstate.Timeout:
            pass  # a move under the name is seen by the next read()
    raise AssertionError(f"never reached; last {s!r}")


def test_rolling_upgrade_through_a_lane(writer):
    """A ConfigV2 writer takes the name over with a Config lane, then is
    redeployed without it (docs/DEPLOYING.md "Retiring V1"): a Python reader
    of the plain name reads Config throughout, then is told its writer is dead
    (not left reading a stale value in silence); a reader of the lane follows
    ConfigV2 into the plain name once the Config reader is gone."""
    plain = shmstate.Reader(writer.name, writer_grace=0.2)
    assert plain.read().type_name == "Config"
    writer.send("lane")
    s = read_until(plain, lambda s: s.port >= 9000)
    assert s.type_name == "Config" and s.hosts[0] == "alpha.internal"
    (lane_name,) = shmstate.inspect(writer.name)["lanes"]
    lane = shmstate.Reader(lane_name)
    assert lane.read().type_name == "ConfigV2"

    writer.send("retire")
    with pytest.raises(shmstate.WriterDead):
        plain.wait_newer(plain.read().generation, timeout=60)  # after the 0.2 s grace
    del s, plain
    gc.collect()

    # The writer retires Config once nobody reads it (it counts at a publish,
    # once per second), and moves ConfigV2 to the plain name.
    deadline = time.monotonic() + 60
    while shmstate.inspect(writer.name)["type"] != "ConfigV2":
        assert time.monotonic() < deadline, "Config never retired"
        writer.send("pub")
    g = writer.send("pub")
    s = read_until(lane, lambda s: s.generation == g)
    assert s.type_name == "ConfigV2" and s.label == f"v2 #{s.port - 9000}"
    assert lane.generation == g
