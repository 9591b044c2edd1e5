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
    with allocator.pages_kept() as how:   # around a training loop: see its docstring
        ...
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

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


DECAYS = ("dirty_decay_ms", "muzzy_decay_ms")
"""jemalloc's two page-return delays: a freed page is given back to the kernel this many ms
after it was freed (10,000 by default; -1 never)."""
PURGE_ALL = "arena.4096.purge"
"""Purges every arena (4096 is MALLCTL_ARENAS_ALL)."""


class Ctl(Protocol):
    """jemalloc's mallctl, reduced to what `pages_kept` needs (a fake stands in for tests)."""

    def read(self, name: str) -> int | None:
        """A signed integer setting, or None where there is none (an arena not made yet)."""
        ...

    def write(self, name: str, value: int) -> bool:
        """Set a signed integer setting; whether it took."""
        ...

    def run(self, name: str) -> bool:
        """Run a command that takes no value (a purge); whether it ran."""
        ...

    def arenas(self) -> int:
        """How many arena slots there are, made or not (`arenas.narenas`)."""
        ...

    def huge_arena(self) -> int | None:
        """The index of the arena for allocations of 8 MiB and up (`opt.narenas`: made
        after the automatic ones), or None."""
        ...


class Mallctl:
    """`Ctl` over the mallctl of the jemalloc serving this process."""

    def __init__(self) -> None:
        fn = ctypes.CDLL(None).mallctl
        fn.argtypes = [
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        fn.restype = ctypes.c_int
        self._fn: Any = fn

    def _read(self, name: str, kind: Any) -> int | None:
        value, size = kind(), ctypes.c_size_t(ctypes.sizeof(kind))
        ok = self._fn(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0
        return int(value.value) if ok else None

    def read(self, name: str) -> int | None:
        return self._read(name, ctypes.c_ssize_t)

    def read_size(self, name: str) -> int | None:
        """A size_t setting or statistic (`arenas.page`, `stats.arenas.<i>.pdirty`)."""
        return self._read(name, ctypes.c_size_t)

    def write(self, name: str, value: int) -> bool:
        new = ctypes.c_ssize_t(value)
        return self._fn(name.encode(), None, None, ctypes.byref(new), ctypes.sizeof(new)) == 0

    def run(self, name: str) -> bool:
        return self._fn(name.encode(), None, None, None, 0) == 0

    def refresh(self) -> bool:
        """Bring the `stats.*` figures up to date (they are a snapshot taken at `epoch`)."""
        new = ctypes.c_uint64(1)
        return self._fn(b"epoch", None, None, ctypes.byref(new), ctypes.sizeof(new)) == 0

    def arenas(self) -> int:
        return self._read("arenas.narenas", ctypes.c_uint) or 0

    def huge_arena(self) -> int | None:
        return self._read("opt.narenas", ctypes.c_uint)


def keep(ctl: Ctl) -> dict[str, int]:
    """Stop jemalloc from giving freed pages back: both delays to -1 in every arena that
    exists and for arenas made later. Returns the old values, by name, for `restore`."""
    old: dict[str, int] = {}
    names = [f"arenas.{d}" for d in DECAYS]  # the default of arenas made from now on
    names += [f"arena.{i}.{d}" for i in range(ctl.arenas()) for d in DECAYS]
    for name in names:
        value = ctl.read(name)
        if value is not None and ctl.write(name, -1):
            old[name] = value
    return old


def restore(ctl: Ctl, old: dict[str, int]) -> None:
    """Put the delays back, then give the pages kept meanwhile back at once: what follows a
    training run (an eval, a server) gets the memory, not only the next allocation.

    A delay someone changed meanwhile (no longer -1) is theirs and stays. An arena made
    during the block (a new thread's, or the huge one made late) started at -1 and gets
    what jemalloc would have given it: the default, or 0 for the huge arena, which jemalloc
    purges at once whenever the default delay is positive."""
    for name, value in old.items():
        if ctl.read(name) == -1:
            ctl.write(name, value)
    huge = ctl.huge_arena()
    for decay in DECAYS:
        default = ctl.read(f"arenas.{decay}")
        for i in range(ctl.arenas()):
            name = f"arena.{i}.{decay}"
            if name not in old and ctl.read(name) == -1 and default is not None:
                ctl.write(name, 0 if i == huge and default > 0 else default)
    ctl.run(PURGE_ALL)


PURGE_EVERY = 8
"""Training steps between purges while pages are kept. Never purging let a 2-epoch Qwen-0.5B
run grow to 23 GB by step 129 and swap (it had peaked at 14.3 GB over one epoch with the
delays on); a purge every 8 steps bounds what is kept to what 8 steps leave, and still spares
7 of every 8 steps' page faults."""


def purge() -> bool:
    """Give every arena's unused pages back to the kernel now; whether it ran (False on
    another malloc)."""
    return loaded() == "jemalloc" and Mallctl().run(PURGE_ALL)


def user_sets_decay(env: Mapping[str, str]) -> bool:
    """Whether MALLOC_CONF chooses a page delay itself (even jemalloc's default: that is how a
    user turns `pages_kept` off). /etc/malloc.conf and a malloc_conf built into a program
    are not read."""
    return any(d in env.get("MALLOC_CONF", "") for d in DECAYS)


@contextmanager
def pages_kept(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """While the block runs, jemalloc keeps the pages it frees instead of giving them back
    to the kernel after its delay; afterwards they go back at once. Yields what was done, for
    the run's metrics: "kept", "user MALLOC_CONF", "system malloc", or "not settable" (a
    jemalloc whose mallctl refused every delay).

    Why: each LoRA step frees and touches again the same hundreds of megabytes. jemalloc
    gives the pages of allocations of 8 MiB and up back the moment they are freed (its
    huge arena), the others after 10 s, and the kernel then faults them in again at the
    next step (Qwen2.5-0.5B, 24 steps: 30 M page faults and a fifth of the CPU time in
    the kernel; kept, 2.7 M and 1.39x the training speed: benchmarks/RESULTS.md). Kept
    for the whole process (MALLOC_CONF) they double the peak memory of a demo whose phases
    each free their own, and a long training run grows until it swaps; kept only while
    training and purged every `PURGE_EVERY` steps (`train.callbacks.PagePurge`), they cost
    what those steps hold. A MALLOC_CONF that sets a delay is the user's choice and is
    left as it is.
    """
    env = os.environ if env is None else env
    if loaded() != "jemalloc":
        yield "system malloc"
        return
    if user_sets_decay(env):
        yield "user MALLOC_CONF"
        return
    ctl = Mallctl()
    old = keep(ctl)
    try:
        yield "kept" if old else "not settable"
    finally:
        restore(ctl, old)
