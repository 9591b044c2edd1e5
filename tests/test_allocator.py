"""The allocator choice: when the command re-executes itself with jemalloc, and that it does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ragtune import allocator
from ragtune.errors import RagtuneError

LIB = "/opt/x/libjemalloc.so.2"


def test_plan_preloads_jemalloc_before_what_was_preloaded():
    env = allocator.plan({"LD_PRELOAD": "/a/libfoo.so", "HOME": "/h"}, "linux", LIB)
    assert env is not None
    assert env["LD_PRELOAD"] == f"{LIB}:/a/libfoo.so"
    assert env["HOME"] == "/h"
    assert env[allocator.REEXECUTED] == "1"
    assert allocator.plan({}, "linux", LIB) == {"LD_PRELOAD": LIB, allocator.REEXECUTED: "1"}


@pytest.mark.parametrize(
    "env, platform, lib",
    [
        ({"RAGTUNE_MALLOC": "system"}, "linux", LIB),  # the user said no
        ({allocator.REEXECUTED: "1"}, "linux", LIB),  # already re-executed once: never loop
        ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "linux", LIB),  # already on it
        ({}, "darwin", LIB),  # LD_PRELOAD is a Linux thing
        ({}, "linux", None),  # not installed: the system's malloc, silently
    ],
)
def test_plan_goes_on_as_is(env, platform, lib):
    assert allocator.plan(env, platform, lib) is None


def test_asking_for_jemalloc_where_there_is_none_is_an_error_naming_the_variable():
    with pytest.raises(RagtuneError, match="RAGTUNE_MALLOC=jemalloc.*libjemalloc2"):
        allocator.plan({"RAGTUNE_MALLOC": "jemalloc"}, "linux", None)
    with pytest.raises(RagtuneError, match="RAGTUNE_MALLOC must be one of auto, jemalloc, system"):
        allocator.plan({"RAGTUNE_MALLOC": "tcmalloc"}, "linux", LIB)


def test_find_jemalloc_looks_in_the_given_folders(tmp_path):
    assert allocator.find_jemalloc((str(tmp_path),)) is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / allocator.SONAME).write_bytes(b"")
    found = allocator.find_jemalloc((str(tmp_path / "a"), str(tmp_path / "b")))
    assert found == str(tmp_path / "b" / allocator.SONAME)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV)}
    clean.pop(allocator.REEXECUTED, None)
    return subprocess.run(
        [sys.executable, "-c", code, "x", "y"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


CODE = (
    "import sys; from ragtune import allocator; print('ran', flush=True); allocator.ensure(); "
    "print(allocator.loaded(), sys.argv[1:])"
)


@pytest.mark.skipif(allocator.find_jemalloc() is None, reason="libjemalloc2 is not installed")
def test_ensure_reexecutes_the_same_command_on_jemalloc():
    done = _run(CODE)
    assert done.returncode == 0, done.stderr
    # What ran before ensure runs again in the new process; the arguments travel with it.
    assert done.stdout.splitlines() == ["ran", "ran", "jemalloc ['x', 'y']"]
    kept = _run(CODE, RAGTUNE_MALLOC="system")
    assert kept.stdout.splitlines() == ["ran", "system ['x', 'y']"]


def test_the_command_says_a_bad_choice_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "ragtune", "--version"],
        env={**os.environ, "RAGTUNE_MALLOC": "fast"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ragtune: error: RAGTUNE_MALLOC must be one of auto, jemalloc, system, got 'fast'"
    )
