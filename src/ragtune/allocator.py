"""Which malloc the process runs on: jemalloc where the machine has it, chosen before anything
large is allocated.

After a training run (thousands of activation and gradient tensors of changing sizes),
glibc's malloc serves inference in the same process worse, and trains slower than jemalloc
(why exactly is not pinned down). An allocator is chosen when a process starts
(LD_PRELOAD), so `ensure` re-executes the command once with jemalloc preloaded; the
`ragtune` command calls it before importing anything else.

RAGTUNE_MALLOC picks: `auto` (the default: jemalloc when found on x86-64 Linux, where it was
measured; else the system's, and `runtime` says how to get it), `jemalloc` (any Linux; an
error when it is not installed) or `system` (never re-execute). A malloc the process
inherits in LD_PRELOAD (jemalloc, tcmalloc, mimalloc) wins over all three. `apt-get install
libjemalloc2` (Debian, Ubuntu) provides it, and `scripts/setup.sh` does that. Figures:
benchmarks/RESULTS.md, "glibc malloc vs jemalloc".

    from ragtune import allocator
    allocator.ensure()        # first thing in an entry point: may replace the process
    allocator.loaded()        # "jemalloc" or "system", for the run's metrics
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ragtune.errors import RagtuneError

ENV = "RAGTUNE_MALLOC"
CHOICES = ("auto", "jemalloc", "system")
REEXECUTED = "RAGTUNE_MALLOC_REEXECUTED"
"""Set for the re-executed process, which removes it at once: its children decide afresh."""
SONAME = "libjemalloc.so.2"
SEARCH = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
"""Where distributions install it (Debian/Ubuntu multiarch, Fedora, Arch, source builds)."""
AUTO_MACHINES = ("x86_64", "amd64")
"""Where `auto` uses it: where it was measured. Elsewhere (arm64, whose 64 KiB-page kernels
some jemalloc builds fail on) RAGTUNE_MALLOC=jemalloc asks for it."""
MALLOCS = ("jemalloc", "tcmalloc", "mimalloc")
"""An LD_PRELOAD that names one of these is the user's choice: `auto` leaves it alone."""


def find_jemalloc(search: tuple[str, ...] = SEARCH) -> str | None:
    """The path of libjemalloc.so.2 on this machine, or None."""
    for folder in search:
        path = Path(folder) / SONAME
        if path.is_file():
            return str(path)
    return None


def choice(env: Mapping[str, str]) -> str:
    value = env.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise RagtuneError(f"{ENV} must be one of {', '.join(CHOICES)}, got {env.get(ENV)!r}")
    return value


def preloaded(env: Mapping[str, str]) -> bool:
    """Whether LD_PRELOAD already names a malloc (jemalloc, tcmalloc, mimalloc)."""
    return any(name in env.get("LD_PRELOAD", "") for name in MALLOCS)


def auto_applies(system: str, machine: str) -> bool:
    """Whether `auto` uses jemalloc on this system (sys.platform) and machine: x86-64 Linux."""
    return system.startswith("linux") and machine.lower() in AUTO_MACHINES


def plan(
    env: Mapping[str, str], system: str, library: str | None, machine: str = "x86_64"
) -> dict[str, str] | None:
    """The environment to re-execute with, or None to go on as is: on Linux (`system`, as
    sys.platform says it), when RAGTUNE_MALLOC allows it, no malloc is preloaded yet and
    `library` (jemalloc's path) exists; for `auto`, on x86-64 only (`machine`)."""
    wanted = choice(env)
    if wanted == "system" or preloaded(env):
        return None  # an LD_PRELOAD the process inherited wins, whatever RAGTUNE_MALLOC says
    if wanted == "auto" and not auto_applies(system, machine):
        return None
    if not system.startswith("linux") or library is None:
        if wanted == "jemalloc":
            raise RagtuneError(
                f"{ENV}=jemalloc, but {SONAME} was not found in {', '.join(SEARCH)} "
                f"(Linux only; `apt-get install libjemalloc2`), or set {ENV}=auto"
            )
        return None
    new = dict(env)
    new["LD_PRELOAD"] = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    new[REEXECUTED] = "1"
    return new


def replayable(orig_argv: Sequence[str], interactive: bool) -> bool:
    """Whether the command can be run again as typed: not an interactive session (a REPL, -i),
    and not a program read from stdin (`python -` or `python < f`), which a second run would
    find empty."""
    return not interactive and len(orig_argv) > 1 and orig_argv[1] != "-"


def ensure() -> None:
    """Re-execute this command with jemalloc preloaded when `plan` says so; return otherwise.
    Call it first in an entry point: the process is replaced, and what ran before runs again."""
    if os.environ.pop(REEXECUTED, None):  # the re-executed process: check, do not loop
        if choice(os.environ) == "jemalloc" and loaded() != "jemalloc":
            raise RagtuneError(f"{ENV}=jemalloc: preloaded {SONAME}, yet malloc is not its")
        return
    new = plan(os.environ, sys.platform, find_jemalloc(), platform.machine())
    if new is None or not replayable(sys.orig_argv, bool(sys.flags.interactive)):
        return
    for stream in (sys.stdout, sys.stderr):  # what was printed must not be lost in the exec
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    # orig_argv is the command as typed: the interpreter with its own flags, then the script
    # or -m module and its arguments (a console script is `python .../bin/ragtune ...`).
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], new)
    except OSError as e:  # the command still runs, on the system's malloc
        print(f"ragtune: could not re-execute with {new['LD_PRELOAD']} ({e})", file=sys.stderr)


def loaded() -> str:
    """ "jemalloc" when it serves this process's malloc, else "system". Its `mallctl` in the
    global symbol namespace says so: a preloaded jemalloc puts it there, a copy some wheel
    bundles (loaded locally, often with prefixed names) does not."""
    try:
        return "jemalloc" if hasattr(ctypes.CDLL(None), "mallctl") else "system"
    except (OSError, TypeError):  # no global namespace to open (Windows)
        return "system"
