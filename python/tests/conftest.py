"""Real Rust processes for the Python package's tests: the writer of
examples/python_fixture.rs (driven line by line on stdin, so no test sleeps)
and the `shmstate` CLI, both built by cargo once per session."""

import itertools
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_names = itertools.count()


def _target_dir():
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    return json.loads(meta.stdout)["target_directory"]


@pytest.fixture(scope="session")
def bins():
    """Paths of the fixture writer and of the CLI (built now)."""
    for build in (
        ["-p", "shmstate-examples", "--features", "serde", "--example", "python_fixture", "--example", "map_fixture"],
        ["-p", "shmstate-cli"],
    ):
        subprocess.run(["cargo", "build", "-q", *build], cwd=REPO, check=True)
    target = os.path.join(_target_dir(), "debug")
    return {
        "fixture": os.path.join(target, "examples", "python_fixture"),
        "map_fixture": os.path.join(target, "examples", "map_fixture"),
        "cli": os.path.join(target, "shmstate"),
    }


def _fresh_name():
    n = f"pytest.{os.getpid()}.{next(_names)}"
    yield n
    for path in (f"/dev/shm/shmstate.{n}", f"/dev/shm/shmstate.{n}.readers"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@pytest.fixture
def name():
    """A fresh object name (the `writer` fixture's), removed afterwards."""
    yield from _fresh_name()


@pytest.fixture
def other_name():
    """Another fresh object name, removed afterwards."""
    yield from _fresh_name()


class RustWriter:
    """`python_fixture serve NAME`: a Rust `Writer<Config>` in another process."""

    def __init__(self, exe, name):
        self.name = name
        self.proc = subprocess.Popen(
            [exe, "serve", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.generation = self._published()

    def _published(self):
        line = self.proc.stdout.readline()
        if not line.startswith("published "):
            raise RuntimeError(f"fixture writer said {line!r} (exit {self.proc.poll()})")
        return int(line.split()[1])

    def send(self, command):
        """Runs `command` (pub, big N, v2) and returns the generation it published."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        self.generation = self._published()
        return self.generation

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.kill()


@pytest.fixture
def writer(bins, name):
    """A running Rust writer of `name` that has published generation 1."""
    w = RustWriter(bins["fixture"], name)
    yield w
    w.close()


@pytest.fixture
def run_python():
    """Runs a Python script in a new interpreter; returns the completed process."""

    def run(script, *args, timeout=300):
        return subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test fails: these tests install or build what they need."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped ({report.longrepr}): the Python tests never skip"
