"""Operator commands: where a run stands and how to resume it."""

import json
from pathlib import Path

from ..cli import command


def _status_args(p):
    p.add_argument("--configfile", "--configfiles", nargs="+", action="extend", default=[],
                   help="the extra config file(s) the run uses, as given to snakemake (`--configfile a.yaml b.yaml`); "
                        "default: those of the running or last Snakemake run here")
    p.add_argument("--directory", "-d", type=Path, default=Path("."),
                   help="the workflow's working directory (where .snakemake/ is); default: here")
    p.add_argument("--profile", default=None,
                   help="the profile the run uses: named in the resume command, and where SLURM logs are "
                        "(its slurm-logdir); default: the running or last Snakemake run's")
    p.add_argument("--json", action="store_true", help="machine-readable output, every job listed")


@command("status", "per stage: which shards are done, running, failed or missing, and the command to resume",
         _status_args)
def status(args):
    import os

    from .. import config as C
    from ..ops.run_status import collect, display_path, format_status, last_run, snakemake_processes

    cwd = os.getcwd()
    workdir = args.directory.resolve()
    profile, shown, run_from = args.profile, list(args.configfile), None
    configfiles = [os.path.abspath(f) for f in args.configfile]
    if profile is None or not args.configfile:
        # Repeat what the operator ran: the running Snakemake's command line, else the last run's log.
        last = last_run(workdir, snakemake_processes(workdir))
        if last:
            run_from = display_path(last.source, workdir)
            if profile is None and last.profile:
                profile = display_path(last.profile, workdir)
            if not args.configfile:
                shown = [display_path(f, workdir) for f in last.configfiles]
                configfiles = [str(workdir / f) for f in last.configfiles]  # as Snakemake read them, from its workdir
                gone = [f for f in configfiles if not os.path.isfile(f)]
                if gone:
                    raise FileNotFoundError(f"the last run ({run_from}) used --configfile {' '.join(gone)}, which no "
                                            "longer exists: name the run's config files with --configfile")
    try:
        os.chdir(workdir)  # config paths (results, logs) are relative to the working directory
        cfg = C.load(*configfiles)
        st = collect(cfg, ".", profile=profile, configfiles=shown, run_from=run_from)
    finally:
        os.chdir(cwd)
    try:
        print(json.dumps(st.to_dict(), indent=2) if args.json else format_status(st))
    except BrokenPipeError:  # `affectflow status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
