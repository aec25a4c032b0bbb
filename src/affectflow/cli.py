"""``affectflow``: the commands the Snakemake rules call, and the operator's tools.

Each workflow rule runs one subcommand (thin rules); the subcommand parses its arguments and calls
one library function. Stage commands take their config section as JSON (``--config-json``), passed
by the rule, so a job run by hand is the same as the job Snakemake ran.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None], str]] = {}


def command(name: str, help: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register ``run(namespace)`` as subcommand ``name``; ``args(parser)`` declares its arguments.

    Subcommands live in :mod:`affectflow.commands`, one module per area, all imported here.
    """

    def deco(run):
        COMMANDS[name] = (args, run, help)
        return run

    return deco


def stage_config(args) -> dict:
    """The config a stage runs with: ``--config-json`` from a rule, else config.yaml + ``--configfile``."""
    from . import config as C

    if getattr(args, "config_json", None):
        return C.from_json(args.config_json)
    return C.load(*getattr(args, "configfile", []) or [])


def config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-json", help="the config sections as JSON (what a rule passes)")
    p.add_argument("--configfile", action="append", default=[], help="extra config files over config.yaml")


def shard_args(p: argparse.ArgumentParser) -> None:
    """The arguments of a per-shard model stage: config, the shard's input, its index, the output."""
    config_args(p)
    p.add_argument("--posts", required=True, type=Path, help="the posts table the shard is cut from")
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, help="cores of the job (the rule passes {threads}); default from config")


def given_paths(paths) -> list[Path]:
    """Paths a rule passed, without Snakemake's placeholder for an empty input list ('' or '.')."""
    return [Path(f) for f in paths or () if f is not None and str(f) not in ("", ".")]


def _load_commands() -> None:
    import importlib
    import pkgutil

    from . import commands

    for mod in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{mod.name}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    _load_commands()
    parser = argparse.ArgumentParser(prog="affectflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"affectflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (configure, run, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        configure(p)
        # -v also after the subcommand (`affectflow status -v`); SUPPRESS keeps the top-level value otherwise
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging, and the traceback of an error")
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "fetch-models":
        from .models import offline

        offline()  # compute commands never reach for the hub; a missing model fails at once
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc = args._run(args)
    except BrokenPipeError:  # `affectflow inspect ... | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # One clear line for operators; the traceback only with -v, or in a rule's job log
        # (a stage command given --config-json), where a developer reads it after the fact.
        log = logging.getLogger("affectflow")
        if args.verbose or getattr(args, "config_json", None):
            import traceback

            traceback.print_exc()
        log.error("%s: %s", type(exc).__name__, exc)
        return 1
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
