"""Command line: ``protolib <command>`` (also ``python -m protolib``)."""

from __future__ import annotations

import argparse
import sys

from protolib import __version__


def _validate_config(args: argparse.Namespace) -> int:
    from protolib.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs = ", ".join(f"{r['dataset']}/{r['model']}" for r in config["runs"])
    print(f"{args.config}: valid ({runs}; methods {', '.join(config['selection']['methods'])}; M {config['selection']['M']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protolib", description=__doc__)
    parser.add_argument("--version", action="version", version=f"protolib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate-config", help="check a study config file without running anything")
    validate.add_argument("config")
    validate.set_defaults(func=_validate_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
