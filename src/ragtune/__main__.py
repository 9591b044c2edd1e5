"""The `ragtune` command's entry (and `python -m ragtune`): choose the allocator before anything
else is imported (`allocator.ensure` may re-execute the command), then run the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    from ragtune import allocator
    from ragtune.errors import RagtuneError

    try:
        allocator.ensure()
    except RagtuneError as e:  # a bad RAGTUNE_MALLOC: one line, as the CLI says errors
        print(f"ragtune: error: {e}", file=sys.stderr)
        sys.exit(2)
    from ragtune.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
