"""The `cluster-scheduler` command: one entry point, one subcommand module per job.

Each module exposes `register(subparsers)` and sets `func` on its parser; imports are lazy so that
`cluster-scheduler controlplane status` does not pay for Ray or numpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module that registers it
SUBCOMMANDS = {
    "controlplane": "cluster_scheduler.controlplane.cli",
    "simulate": "cluster_scheduler.simulate",
    "check": "cluster_scheduler.check",
    "loadtest": "cluster_scheduler.loadtest.cli",
    "run": "cluster_scheduler.run",
}


class CliError(Exception):
    """An error the user can fix (bad file, bad flag): printed as one line, no traceback."""


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cluster-scheduler", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, module in SUBCOMMANDS.items():
        if wanted and name != wanted:
            sub.add_parser(name, help="(see `cluster-scheduler %s --help`)" % name)
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("cluster_scheduler"):
                continue  # not built yet in this checkout
            raise
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"cluster-scheduler {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # run through the package module so CliError raised by subcommands is this same class
    from cluster_scheduler.cli import main as _main

    sys.exit(_main())
