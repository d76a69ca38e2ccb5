"""The `effnet` command: `effnet scale ...` here, training subcommands through LightningCLI."""

from __future__ import annotations

import sys

USAGE = """usage: effnet <command> [options]

commands:
  scale        print depth, width, resolution, params and MACs of scaled EfficientNets
run 'effnet <command> --help' for a command's options"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("--help", [])
    if command == "scale":
        from effnet_lightning.scale_table import main as scale_main

        return scale_main(rest)
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    print(f"effnet: error: unknown command {command!r}; choose 'scale' (see 'effnet --help')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
