"""`snakemake --lint`: every kind of lint it reports is one the README justifies."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def test_every_remaining_lint_is_justified_in_the_readme():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(REPO)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=300)
    kinds = {re.sub(r" in line \d+", "", m.group(1)).rstrip(":").strip()
             for m in re.finditer(r"^    \* (.+)$", proc.stdout + proc.stderr, flags=re.M)}
    section = (REPO / "README.md").read_text().split("### `snakemake --lint`", 1)[1]
    justified = {row.split("|")[1].strip() for row in section.splitlines() if row.startswith("| ") and "---" not in row}
    unjustified = sorted(k for k in kinds if not any(k.startswith(j.rstrip(".")) for j in justified))
    assert kinds, proc.stderr[-2000:]  # the lint ran
    assert not unjustified, f"lints not justified in the README: {unjustified}"
