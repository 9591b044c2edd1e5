"""Atomic writes: all or nothing, and the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ragtune import atomic


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic.write_text(tmp_path / "card.md", "x")
        with open(tmp_path / "plain.md", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "card.md").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode)


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"f1": 1})
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == '{\n  "f1": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_publish_dir_swaps_a_set_in_whole(tmp_path: Path) -> None:
    target = tmp_path / "split"
    target.mkdir()
    (target / "train.jsonl").write_text("old")
    tmp = atomic.temp_dir_beside(target)
    (tmp / "train.jsonl").write_text("new")
    atomic.publish_dir(tmp, target)
    assert (target / "train.jsonl").read_text() == "new" and not tmp.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_fallback_publish_killed_between_renames_restores_the_old_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where renameat2 is missing the old folder is moved aside first; a kill right then
    leaves no target. The next `remove_stale` puts the old set back instead of deleting it."""
    target = tmp_path / "split"
    target.mkdir()
    (target / "train.jsonl").write_text("old")
    tmp = atomic.temp_dir_beside(target)
    (tmp / "train.jsonl").write_text("new")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    calls = []

    def replace_then_die(src: object, dst: object) -> None:
        os.rename(src, dst)  # type: ignore[arg-type]
        calls.append(dst)
        raise KeyboardInterrupt("killed between the two renames")

    monkeypatch.setattr(atomic.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        atomic.publish_dir(tmp, target)
    monkeypatch.undo()
    assert not target.exists()
    dead = 2**22 + 5  # rename the leftovers as a dead writer's, as after a real kill
    for p in tmp_path.iterdir():
        p.rename(p.with_name(p.name.replace(f".{os.getpid()}.", f".{dead}.")))
    removed = atomic.remove_stale(tmp_path)
    assert len(removed) == 1 and not removed[0].endswith(".old.tmp")  # the half-published new set
    assert (target / "train.jsonl").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["split"]
