"""Read and write shmstate objects (typed shared state over POSIX shared
memory) from Python, in place: any object by name through the schema stored
in it, fields decoded only when touched, numpy views of numeric vectors.

    import shmstate, numpy as np
    r = shmstate.Reader("myapp.config")
    with r.read() as snap:
        snap.port, snap.hosts[0], np.asarray(snap.weights)

docs/PYTHON.md in the repository has the guarantees and limits.
"""

import asyncio as _asyncio
import os as _os

from . import _errors
from ._errors import *  # noqa: F401,F403
from ._shmstate import Reader as _NativeReader
from ._shmstate import MapReader, MapSnapshot, Snapshot, View
from ._shmstate import Writer as _NativeWriter
from ._shmstate import inspect, list, remove  # noqa: A004
from ._shmstate import schema_json as _schema_json
from ._stubgen import stubgen

__all__ = [
    "MapReader",
    "MapSnapshot",
    "Reader",
    "Snapshot",
    "View",
    "Writer",
    "inspect",
    "list",
    "remove",
    "schema",
    "stubgen",
    *_errors.__all__,
]


class Reader(_NativeReader):
    """The latest snapshot of an object, by name, of any type.

    Reader(name, follow=True, wait_for_writer=None, writer_grace=3.0)

    `read()` returns a `Snapshot` (the same one while the generation is
    unchanged); `wait_newer(g, timeout=None)` blocks without the GIL;
    `await changed(g)` waits in asyncio.
    """

    async def changed(self, generation):
        """The first generation newer than `generation`, awaited without a
        thread per waiter (an eventfd the loop watches). Cancelling the
        task cancels the wait; raises `WriterDead` after the grace period."""
        waiting = self._changed(generation)
        loop = _asyncio.get_running_loop()
        fd = waiting.fileno()
        woken = _asyncio.Event()
        loop.add_reader(fd, woken.set)
        try:
            while True:
                woken.clear()
                got = waiting.poll()
                if got is not None:
                    self._after_wait()
                    return got
                await woken.wait()
        finally:
            loop.remove_reader(fd)
            waiting.close()


def schema(name):
    """The schema stored in the object `name`, as a schema file's JSON text
    (what `shmstate schema NAME` prints)."""
    return _schema_json(name)


def _schema_text(schema):
    if isinstance(schema, _os.PathLike) or (isinstance(schema, str) and not schema.lstrip().startswith("{")):
        with open(schema, encoding="utf-8") as f:
            return f.read()
    return schema


class Writer(_NativeWriter):
    """Publishes Python values into an object of any type.

    Writer.open(name) takes over an existing object (its writer gone) with
    the schema stored in it; Writer.open(name, schema=S) creates it (or takes
    it over) with the schema S: a schema file's path, its JSON text, or
    `shmstate.schema(other_name)`. Writer.create(name, schema=S) refuses an
    existing object.
    """

    @classmethod
    def open(cls, name, schema=None):
        text = None if schema is None else _schema_text(schema)
        return cls._open(name, text, False)

    @classmethod
    def create(cls, name, schema):
        return cls._open(name, _schema_text(schema), True)
