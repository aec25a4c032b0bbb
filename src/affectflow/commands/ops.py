"""Operator commands: where a run stands and how to resume it."""

import json
from pathlib import Path

from ..cli import command


def _status_args(p):
    p.add_argument("--configfile", action="extend", nargs="+", default=[],
                   help="the extra config file(s) the run uses (as given to snakemake --configfile)")
    p.add_argument("--directory", "-d", type=Path, default=Path("."),
                   help="the workflow's working directory (where .snakemake/ is); default: here")
    p.add_argument("--profile", default="profiles/slurm",
                   help="the profile the run uses: named in the resume command, and where SLURM logs are "
                        "(its slurm-logdir); default: profiles/slurm")
    p.add_argument("--json", action="store_true", help="machine-readable output, every job listed")


@command("status", "per stage: which shards are done, running, failed or missing, and the command to resume",
         _status_args)
def status(args):
    import os

    from .. import config as C
    from ..ops.run_status import collect, format_status

    cwd = os.getcwd()
    configfiles = [os.path.abspath(f) for f in args.configfile]
    try:
        os.chdir(args.directory)  # config paths (results, logs) are relative to the working directory
        cfg = C.load(*configfiles)
        st = collect(cfg, ".", profile=args.profile, configfiles=args.configfile)
    finally:
        os.chdir(cwd)
    try:
        print(json.dumps(st.to_dict(), indent=2) if args.json else format_status(st))
    except BrokenPipeError:  # `affectflow status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
