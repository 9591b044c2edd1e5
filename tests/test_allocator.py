"""The allocator choice: when the command re-executes itself with jemalloc, and that it does."""

from __future__ import annotations

import json
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
    "env, system, lib, machine",
    [
        ({"RAGTUNE_MALLOC": "system"}, "linux", LIB, "x86_64"),  # the user said no
        ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "linux", LIB, "x86_64"),  # already on it
        ({"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, "linux", LIB, "x86_64"),  # their choice
        ({}, "darwin", LIB, "x86_64"),  # LD_PRELOAD is a Linux thing
        ({}, "linux", None, "x86_64"),  # not installed: the system's malloc
        ({}, "linux", LIB, "aarch64"),  # auto: only where it was measured
    ],
)
def test_plan_goes_on_as_is(env, system, lib, machine):
    assert allocator.plan(env, system, lib, machine) is None


def test_asking_for_jemalloc_works_off_x86_and_is_an_error_where_there_is_none():
    asked = {"RAGTUNE_MALLOC": "jemalloc"}
    assert allocator.plan(asked, "linux", LIB, "aarch64") is not None
    with pytest.raises(RagtuneError, match="RAGTUNE_MALLOC=jemalloc.*libjemalloc2"):
        allocator.plan(asked, "linux", None)
    with pytest.raises(RagtuneError, match="RAGTUNE_MALLOC must be one of auto, jemalloc, system"):
        allocator.plan({"RAGTUNE_MALLOC": "tcmalloc"}, "linux", LIB)


def test_find_jemalloc_looks_in_the_given_folders(tmp_path):
    assert allocator.find_jemalloc((str(tmp_path),)) is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / allocator.SONAME).write_bytes(b"")
    found = allocator.find_jemalloc((str(tmp_path / "a"), str(tmp_path / "b")))
    assert found == str(tmp_path / "b" / allocator.SONAME)


@pytest.mark.parametrize(
    "argv, interactive, ok",
    [
        (["python", "/venv/bin/ragtune", "demo"], False, True),  # the console script
        (["python", "-m", "ragtune", "eval"], False, True),
        (["python", "-c", "code"], False, True),
        (["python", "-"], False, False),  # the program came from stdin: a rerun reads nothing
        (["python"], False, False),  # a REPL
        (["python", "-i", "x.py"], True, False),
    ],
)
def test_only_a_command_that_can_run_again_is_replayed(argv, interactive, ok):
    assert allocator.replayable(argv, interactive) is ok


@pytest.fixture
def exec_calls(monkeypatch):
    """ensure() on a Linux x86-64 machine that has jemalloc, with execve recorded, not run."""
    calls = []
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: LIB)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(allocator.sys, "orig_argv", ["py", "-X", "utf8", "-m", "ragtune", "demo"])
    monkeypatch.setattr(allocator.os, "execve", lambda *a: calls.append(a))
    for key in ("LD_PRELOAD", allocator.ENV, allocator.REEXECUTED):
        monkeypatch.delenv(key, raising=False)
    return calls


def test_ensure_replays_the_command_as_typed_with_jemalloc_preloaded(exec_calls):
    allocator.ensure()
    [(exe, argv, env)] = exec_calls
    assert exe == sys.executable
    assert argv == [sys.executable, "-X", "utf8", "-m", "ragtune", "demo"]
    assert env["LD_PRELOAD"] == LIB and env[allocator.REEXECUTED] == "1"


def test_the_reexecuted_process_drops_the_marker_so_its_children_decide_afresh(
    exec_calls, monkeypatch
):
    monkeypatch.setenv(allocator.REEXECUTED, "1")
    allocator.ensure()
    assert exec_calls == [] and allocator.REEXECUTED not in os.environ


def test_a_failed_execve_says_so_and_the_command_goes_on(exec_calls, monkeypatch, capsys):
    def refuse(*_a):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(allocator.os, "execve", refuse)
    allocator.ensure()  # returns: the command runs on the system's malloc
    assert f"could not re-execute with {LIB}" in capsys.readouterr().err


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


@pytest.mark.skipif(
    allocator.find_jemalloc() is None
    or not allocator.auto_applies(sys.platform, allocator.platform.machine()),
    reason="no libjemalloc2 here, or not a machine where auto uses it",
)
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


def test_a_cpu_run_on_the_system_malloc_says_once_how_to_get_jemalloc(monkeypatch, capsys):
    from ragtune import runtime

    monkeypatch.setattr(runtime, "_hinted", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: None)
    monkeypatch.delenv(allocator.ENV, raising=False)
    runtime._malloc_hint()
    runtime._malloc_hint()
    out = capsys.readouterr().out
    assert out.count("apt-get install libjemalloc2") == 1
    monkeypatch.setattr(runtime, "_hinted", False)
    monkeypatch.setenv(allocator.ENV, "system")  # asked for the system's: nothing said
    runtime._malloc_hint()
    assert capsys.readouterr().out == ""


class FakeCtl:
    """mallctl over a dict: names missing from it are arenas not made yet; `fail` names
    refuse writes."""

    def __init__(self, values, slots=3, huge=2, fail=()):
        self.values, self.ran = dict(values), []
        self.slots, self.huge, self.fail = slots, huge, set(fail)

    def read(self, name):
        return self.values.get(name)

    def write(self, name, value):
        if name not in self.values or name in self.fail:
            return False
        self.values[name] = value
        return True

    def run(self, name):
        self.ran.append(name)
        return True

    def arenas(self):
        return self.slots

    def huge_arena(self):
        return self.huge


START = {
    "arenas.dirty_decay_ms": 10000,
    "arenas.muzzy_decay_ms": 0,
    "arena.0.dirty_decay_ms": 10000,
    "arena.0.muzzy_decay_ms": 0,
    "arena.2.dirty_decay_ms": 0,  # the huge-allocation arena purges at once by default
    "arena.2.muzzy_decay_ms": 0,
}


def test_keep_sets_both_delays_of_every_made_arena_and_restore_puts_them_back():
    ctl = FakeCtl(START)
    old = allocator.keep(ctl)  # arena 1 was never made: skipped, not an error
    assert old == START
    assert set(ctl.values.values()) == {-1}
    assert ctl.ran == []
    allocator.restore(ctl, old)
    assert ctl.values == START
    assert ctl.ran == ["arena.4096.purge"]  # the kept pages go back at once


def test_restore_gives_arenas_made_meanwhile_jemallocs_delays_and_leaves_others_changes():
    ctl = FakeCtl({k: v for k, v in START.items() if not k.startswith("arena.2.")}, slots=4)
    old = allocator.keep(ctl)
    # during the block: a thread's arena and the huge one are made, at the -1 default ...
    for i in (1, 2):
        ctl.values |= {f"arena.{i}.dirty_decay_ms": -1, f"arena.{i}.muzzy_decay_ms": -1}
    ctl.values["arena.0.muzzy_decay_ms"] = 500  # ... and someone sets a delay of their own
    allocator.restore(ctl, old)
    assert ctl.values["arena.1.dirty_decay_ms"] == 10000
    assert ctl.values["arena.1.muzzy_decay_ms"] == 0
    assert ctl.values["arena.2.dirty_decay_ms"] == 0  # huge: at once, as jemalloc makes it
    assert ctl.values["arena.0.dirty_decay_ms"] == 10000
    assert ctl.values["arena.0.muzzy_decay_ms"] == 500


def test_a_delay_that_cannot_be_set_is_not_restored():
    ctl = FakeCtl(START, fail={"arena.0.dirty_decay_ms"})
    old = allocator.keep(ctl)
    assert "arena.0.dirty_decay_ms" not in old
    assert ctl.values["arena.0.dirty_decay_ms"] == 10000
    allocator.restore(ctl, old)
    assert ctl.values == START


def test_a_user_malloc_conf_with_a_delay_is_left_alone():
    assert allocator.user_sets_decay({"MALLOC_CONF": "background_thread:true,dirty_decay_ms:-1"})
    assert allocator.user_sets_decay({"MALLOC_CONF": "muzzy_decay_ms:0"})
    assert not allocator.user_sets_decay({"MALLOC_CONF": "background_thread:true"})
    assert not allocator.user_sets_decay({})


def test_pages_kept_on_the_system_malloc_does_nothing():
    if allocator.loaded() == "jemalloc":
        pytest.skip("this test process runs on jemalloc")
    with allocator.pages_kept({}) as how:
        assert how == "system malloc"


PAGES_KEPT = """
import json, threading
from ragtune import allocator
ctl = allocator.Mallctl()
block = bytearray(16 << 20); del block  # the huge arena exists before, as in training
before = ctl.read("arena.0.dirty_decay_ms")
huge = ctl.huge_arena()
with allocator.pages_kept() as how:
    inside = [ctl.read(f"arena.{i}.{d}") for i in (0, huge) for d in allocator.DECAYS]
    block = bytearray(64 << 20)  # freed inside: its pages stay dirty, not given back
    del block
    worker = threading.Thread(target=lambda: bytes(1 << 16))  # may make a new arena
    worker.start(); worker.join()
    assert ctl.refresh()
    dirty = ctl.read_size("stats.arenas.4096.pdirty")
    block = bytearray(64 << 20); del block
    purged = allocator.purge()  # what PagePurge calls every few steps
    assert ctl.refresh()
    dirty_purged = ctl.read_size("stats.arenas.4096.pdirty")
assert ctl.refresh()
print(json.dumps({"how": how, "before": before, "inside": inside, "huge": huge,
                  "after": {i: [ctl.read(f"arena.{i}.{d}") for d in allocator.DECAYS]
                            for i in range(ctl.arenas())},
                  "page": ctl.read_size("arenas.page"),
                  "purged": purged, "dirty_purged": dirty_purged,
                  "dirty_inside": dirty, "dirty_after": ctl.read_size("stats.arenas.4096.pdirty")}))
"""


@pytest.mark.skipif(allocator.find_jemalloc() is None, reason="libjemalloc2 is not installed")
@pytest.mark.parametrize("conf", ["", "dirty_decay_ms:5000"])
def test_pages_kept_under_a_real_jemalloc(conf):
    env = {**os.environ, "LD_PRELOAD": allocator.find_jemalloc(), "MALLOC_CONF": conf}
    out = subprocess.run(
        [sys.executable, "-c", PAGES_KEPT], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    if conf:  # the user's delay wins: nothing is changed
        assert got["how"] == "user MALLOC_CONF"
        assert got["before"] == got["after"]["0"][0] == got["inside"][0] == 5000
        return
    assert got["how"] == "kept"
    assert got["inside"] == [-1, -1, -1, -1]
    made = {int(i): v for i, v in got["after"].items() if v[0] is not None}
    assert made[0][0] == got["before"] == 10000
    assert made[got["huge"]] == [0, 0]  # the huge arena purges at once again
    assert all(-1 not in v for v in made.values())  # no arena left keeping pages
    pages = (64 << 20) // got["page"]
    assert got["dirty_inside"] >= pages  # the freed block's pages stayed with the process
    assert got["purged"] and got["dirty_purged"] < pages // 10  # a purge gives them back
    assert got["dirty_after"] < pages // 10  # and so does the end of the block


def test_page_purge_runs_every_n_steps_and_after_each_eval_pass():
    from types import SimpleNamespace

    from ragtune.train.callbacks import PagePurge

    fired, state = [], SimpleNamespace(global_step=0)
    cb = PagePurge(lambda: fired.append(state.global_step), every=8)
    for step in range(1, 25):
        state.global_step = step
        cb.on_step_end(None, state, None)
    assert fired == [8, 16, 24]
    cb.on_evaluate(None, state, None)
    assert fired == [8, 16, 24, 24]


def test_purge_on_the_system_malloc_does_nothing():
    if allocator.loaded() == "jemalloc":
        pytest.skip("this test process runs on jemalloc")
    assert allocator.purge() is False
