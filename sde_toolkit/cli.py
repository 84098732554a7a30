"""Command-line interface: ``sde-toolkit``."""

from __future__ import annotations

import argparse
import sys

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sde-toolkit", description="SDE ensembles, Fokker–Planck, score models, MCMC.")
    p.add_argument("--version", action="version", version=f"sde-toolkit {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p.add_subparsers(dest="command", metavar="COMMAND")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
