"""A writer that changes the object's type under the name: a following
reader reads the new type (no silently stale reader: DESIGN.md), old views
keep the old one; a reader that does not follow is told."""

import threading

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
