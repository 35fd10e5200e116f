"""Readers and fork(): a child opens its own; the parent's are refused there."""

import os

import numpy as np

import shmstate


def test_fork(writer):
    r = shmstate.Reader(writer.name)
    s = r.read()
    inherited = np.asarray(s.weights)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            try:
                r.read()
                msg = "parent reader worked in the child"
            except shmstate.Error as e:
                msg = "refused" if "fork" in str(e) else f"other error {e}"
            own = shmstate.Reader(writer.name).read()
            msg += f" {own.port} {inherited[0]}"
            os.write(wfd, msg.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    got = os.read(rfd, 1000).decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert got == "refused 8001 1.0"
    # The parent's reader and pins are untouched by the child's exit.
    assert r.read() is s and s.port == 8001 and inherited[0] == 1.0
