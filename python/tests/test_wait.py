"""Waiting for new generations: blocking (GIL released), asyncio
(cancellation-safe), a reader started before its writer, a dead writer."""

import asyncio
import threading

import pytest

import shmstate
from conftest import RustWriter


def test_wait_newer_returns_the_next_generation(writer):
    r = shmstate.Reader(writer.name)
    g = r.read().generation
    got = []
    t = threading.Thread(target=lambda: got.append(r.wait_newer(g, timeout=60)))
    t.start()
    writer.send("pub")
    t.join(timeout=60)
    assert got == [g + 1] and r.read().generation == g + 1


def test_wait_newer_releases_the_gil(writer):
    r = shmstate.Reader(writer.name)
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=tick)
    t.start()
    with pytest.raises(shmstate.Timeout):
        r.wait_newer(r.generation, timeout=0.3)
    seen = ticks
    stop.set()
    t.join()
    # The other thread ran while this one waited (with the GIL held it could not).
    assert seen > 1000


def test_timeout_is_a_timeout_error(writer):
    r = shmstate.Reader(writer.name)
    with pytest.raises(TimeoutError) as e:
        r.wait_newer(r.generation, timeout=0.05)
    assert isinstance(e.value, shmstate.Timeout) and isinstance(e.value, shmstate.Error)
    with pytest.raises(ValueError):
        r.wait_newer(0, timeout=-1)


def test_an_older_generation_returns_at_once(writer):
    writer.send("pub")
    assert shmstate.Reader(writer.name).wait_newer(1, timeout=60) == 2


def test_changed_under_asyncio(writer):
    r = shmstate.Reader(writer.name)

    async def main():
        task = asyncio.ensure_future(r.changed(1))
        await asyncio.sleep(0)  # the task registers its wait
        assert not task.done()
        await asyncio.get_running_loop().run_in_executor(None, writer.send, "pub")
        return await asyncio.wait_for(task, 60)

    assert asyncio.run(main()) == 2


def test_changed_cancellation(writer):
    r = shmstate.Reader(writer.name)

    async def main():
        tasks = [asyncio.ensure_future(r.changed(1)) for _ in range(50)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(x, asyncio.CancelledError) for x in results)
        # Cancelled waits leave nothing behind: a new one still works.
        later = asyncio.ensure_future(r.changed(1))
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, writer.send, "pub")
        return await asyncio.wait_for(later, 60)

    assert asyncio.run(main()) == 2
    assert shmstate.inspect(writer.name)["live_readers"] >= 1


def test_reader_started_before_its_writer(bins, name):
    got = []

    def read():
        r = shmstate.Reader(name, wait_for_writer=60)
        got.append(r.read().port)

    t = threading.Thread(target=read)
    t.start()
    w = RustWriter(bins["fixture"], name)
    try:
        t.join(timeout=60)
        assert got == [8001]
    finally:
        w.close()


def test_wait_for_writer_times_out(name):
    with pytest.raises(shmstate.Error):
        shmstate.Reader(name, wait_for_writer=0.05)


def test_writer_dead_after_the_grace_period(bins, name):
    w = RustWriter(bins["fixture"], name)
    r = shmstate.Reader(name, writer_grace=0.2)
    assert r.writer_alive
    w.kill()
    with pytest.raises(shmstate.WriterDead):
        r.wait_newer(r.generation, timeout=60)
    assert not r.writer_alive
    # Its last snapshot is still readable.
    assert r.read().port == 8001
