"""Test-only hooks for the SLURM tests: stall chosen Parquet writes; poll SLURM at a steady pace.

The SLURM tests put this folder first on ``PYTHONPATH`` of the Snakemake they start; SLURM jobs
inherit the environment (``sbatch --export=ALL``), so every job's Python imports this module at
start-up (``site`` imports ``sitecustomize``). Production code is untouched, and without the
variables below set this module does nothing.

``AFFECTFLOW_TEST_STALL="<output path suffix>:<seconds>:<marker file>[;...]"``: when an
:class:`affectflow.io.parquet.ParquetWriter` whose target ends with the suffix has written its
first batch (its temporary file exists and holds data, the final file does not), the process
writes its pid to the marker file and sleeps for the given seconds, or until a file named like the
marker plus ``.release`` appears. Only the first job to get there stalls (the marker exists
afterwards), so a retried or rerun job runs normally. The tests use it to have a job
killed mid-write, killed by SLURM at its time limit, or outlive a killed Snakemake.

``AFFECTFLOW_TEST_STEADY_POLL=1``: snakemake-executor-plugin-slurm waits 10 s longer after every
status check that saw no job finish (up to 180 s); a test job takes ~8 s to start, so every wave
of jobs would cost ~30 s of waiting. With this set, the wait stays at
``slurm-init-seconds-before-status-checks`` (the polling profile tests/slurm/fast sets it to 1 s).
Only the pace of ``sacct`` calls changes, not how their answers are handled.
"""

import os
import sys

_SPEC = os.environ.get("AFFECTFLOW_TEST_STALL")
_STEADY = os.environ.get("AFFECTFLOW_TEST_STEADY_POLL") == "1"


def _after_import(name: str, patch) -> None:
    """Run ``patch(module)`` right after module ``name`` is first imported."""
    import importlib.abc
    import importlib.util

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                patch(module)

            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, Finder())


def _stall_writes(spec: str) -> None:
    stalls = [s.rsplit(":", 2) for s in spec.split(";") if s]

    def patch(module) -> None:
        original = module.ParquetWriter.write

        def write(self, data):
            original(self, data)
            for suffix, seconds, marker in stalls:
                if str(self.path).endswith(suffix) and not os.path.exists(marker):
                    import time

                    with open(marker, "w") as f:
                        f.write(f"{os.getpid()}\n")
                    end = time.monotonic() + float(seconds)
                    while time.monotonic() < end and not os.path.exists(marker + ".release"):
                        time.sleep(0.1)

        module.ParquetWriter.write = write

    _after_import("affectflow.io.parquet", patch)


def _steady_poll() -> None:
    def patch(module) -> None:
        original = module.Executor.check_active_jobs

        async def check_active_jobs(self, active_jobs):
            async for job in original(self, active_jobs):
                yield job
            self.next_seconds_between_status_checks = self.workflow.executor_settings.init_seconds_before_status_checks

        module.Executor.check_active_jobs = check_active_jobs

    _after_import("snakemake_executor_plugin_slurm", patch)


if _SPEC:
    _stall_writes(_SPEC)
if _STEADY:
    _steady_poll()
