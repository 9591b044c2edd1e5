"""Which malloc the process runs on: jemalloc where the machine has it, chosen before anything
large is allocated.

After a training run (thousands of activation and gradient tensors of changing sizes),
glibc's malloc serves inference in the same process worse; why exactly is not pinned down:
fixing its mmap threshold low (128 KiB) or high (32 MiB) did not help. On the project's
2-core Xeon (`benchmarks/allocator.py`, SmolLM2), prompts ran at 1,526 tokens/s after 20
training steps in the same process against 2,017 before; the demo's tuned eval ran at 0.64x
its base's. Under jemalloc the same sequence measured 2,181 and 2,205, training ran 1.23x
faster (682 vs 553 tokens/s) and peak RSS was 0.73x. An allocator is chosen when a process
starts (LD_PRELOAD), so `ensure` re-executes the command once with jemalloc preloaded,
before torch is imported.

RAGTUNE_MALLOC picks: `auto` (the default: jemalloc when found, else the system's, and
`runtime` says how to get it), `jemalloc` (an error when it is not installed) or `system`
(never re-execute). Linux only; `apt-get install libjemalloc2` (Debian, Ubuntu) provides it,
and `scripts/setup.sh` does that.

    from ragtune import allocator
    allocator.ensure()        # first thing in an entry point: may replace the process
    allocator.loaded()        # "jemalloc" or "system", for the run's metrics
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ragtune.errors import RagtuneError

ENV = "RAGTUNE_MALLOC"
CHOICES = ("auto", "jemalloc", "system")
REEXECUTED = "RAGTUNE_MALLOC_REEXECUTED"
"""Set in the re-executed process: it never re-executes again, whatever it finds."""
SONAME = "libjemalloc.so.2"
SEARCH = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
"""Where distributions install it (Debian/Ubuntu multiarch, Fedora, Arch, source builds)."""


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
    return "jemalloc" in env.get("LD_PRELOAD", "")


def plan(env: Mapping[str, str], platform: str, library: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None to go on as is: on Linux, when RAGTUNE_MALLOC
    allows it, jemalloc is not preloaded yet and `library` (its path) exists."""
    wanted = choice(env)
    if wanted == "system" or REEXECUTED in env or preloaded(env):
        return None
    if not platform.startswith("linux") or library is None:
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


def ensure() -> None:
    """Re-execute this command with jemalloc preloaded when `plan` says so; return otherwise.
    Call it first in an entry point: the process is replaced, and what ran before runs again."""
    new = plan(os.environ, sys.platform, find_jemalloc())
    if new is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # orig_argv is the command as typed: the interpreter with its own flags, then the script
    # or -m module and its arguments (a console script is `python .../bin/ragtune ...`).
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], new)
    except OSError as e:  # the command still runs, on the system's malloc
        print(f"ragtune: could not re-execute with {new['LD_PRELOAD']} ({e})", file=sys.stderr)


def loaded() -> str:
    """ "jemalloc" when it serves this process's malloc, else "system"."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"
