"""`python -m service serve|infer ...`: the service commands without the compiler's CLI."""

import argparse
import sys

from service.cli import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netspec")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.owns_process = argv is None  # as the netspec command: the process is the command's own
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
