"""The one base class for errors a user can cause and fix: bad input, config, models, paths.

The CLI prints a `RagtuneError` as one line (`ragtune train: error: ...`) and exits 2; any other
exception is a bug and keeps its traceback. Each subclass's message names what is wrong (the
file, line and field; the config key; the model spec), so the line alone tells the user what to
change. Subclasses also derive from ValueError, which callers of the Python API already catch.

    raise ConfigError("lora.r: must be at least 1, got 0")
"""

from __future__ import annotations


class RagtuneError(ValueError):
    """A problem with what the user gave ragtune; the message says what and where."""
