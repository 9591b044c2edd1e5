"""Atomic output: write to a temporary file (or folder) beside the target, then rename it in.

A killed run therefore leaves either the old file or the complete new one, never half a file.
A set of files that belong together (prepare's split, an export, an adapter) is built in a
temporary folder and published with `publish_dir`, which swaps it in with one rename, so a
reader finds the old set or the new one, never a mix. Temporary names carry the writer's PID,
and `remove_stale` deletes those whose writer is gone (a SIGKILL leaves them behind).
Used for every artifact ragtune writes (JSONL, metrics, reports, configs, folders).

    with atomic_open("out/metrics.json") as f: ...
    tmp = temp_dir_beside(out); ...write into tmp...; publish_dir(tmp, out)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, Any

from ragtune.errors import RagtuneError


def current_umask() -> int:
    """The process's umask, read from /proc where Linux shows it; elsewhere it can only be
    read by setting it (and straight back), which briefly affects other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the
        # umask), so a card, Modelfile or report can be read by other users and services.
        os.chmod(tmp, 0o666 & ~current_umask())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line; returns the number of rows written."""
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


# ".<name>.<pid>.<random>.tmp": a temporary file or folder and the process that writes it.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def remove_stale(folder: str | Path) -> list[str]:
    """Delete temporary files and folders in `folder` whose writing process is gone; returns
    their names. Those of live processes (a concurrent run) are left alone."""
    removed: list[str] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m is None or int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        original = folder / m["name"]
        if p.name.endswith(".old.tmp") and not original.exists():
            # `publish_dir`'s fallback was killed between its two renames: the old set is
            # the only complete one, so it goes back in place rather than away.
            os.replace(p, original)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def temp_dir_beside(target: str | Path) -> Path:
    """An empty folder next to `target`, to build a set of files in before `publish_dir`;
    it gets the permissions a plain mkdir would (mkdtemp's 0700 would make it private)."""
    target = Path(target).resolve()  # beside a symlink's target, not beside the link
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    )
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


_RENAME_EXCHANGE = 2  # renameat2 flag: swap two paths atomically (Linux 3.15+)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd = -100
    rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def publish_dir(tmp: str | Path, target: str | Path) -> None:
    """Put the finished folder `tmp` at `target`, replacing whatever folder was there.

    Where `target` exists, the two are swapped with one atomic rename (Linux renameat2), so
    a kill at any instant leaves `target` holding the old set or the new one; the old set,
    now under the temporary name, is then deleted (or, if killed first, by the next
    `remove_stale`). Elsewhere the old folder is moved aside first: a kill between the two
    renames leaves no `target` but both sets on disk, never a mix."""
    tmp, target = Path(tmp), Path(target).resolve()  # a symlinked target keeps its link
    if not target.exists():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def refuse_overwriting_inputs(outputs: Iterable[str | Path], inputs: dict[str, str | None]) -> None:
    """Stop before any output is written over an input file, or replaces a folder holding
    one; the error names both. `outputs` may hold glob patterns ("checkpoint-*")."""
    for key, value in inputs.items():
        if not value or not Path(value).exists():
            continue  # an hf: spec, a hub id, or an alias: nothing on disk to protect
        src = Path(value).resolve()
        for out in outputs:
            out = Path(out)
            parent = out.parent.resolve()
            hit = any(p.parent == parent and fnmatch(p.name, out.name) for p in (src, *src.parents))
            if hit:
                raise RagtuneError(
                    f"{out} would overwrite the input {key}={value}; choose another out "
                    "(ragtune never writes over its inputs)"
                )
