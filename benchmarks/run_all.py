#!/usr/bin/env python
"""Run every benchmark one after another (never side by side: they measure the same cores).

    python benchmarks/run_all.py            # full sizes (the README's figures), ~1 h on 2 cores
    python benchmarks/run_all.py --quick    # small sizes, a few minutes each
    python benchmarks/run_all.py --only ingest features

Each benchmark prints its own table and writes its JSON under ``benchmarks/out/``; this script
adds ``benchmarks/out/run_all.json`` (which ran, exit status, wall time) and exits non-zero when
any failed. The report rule picks the JSON files up (``snakemake --report``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> script; every script takes --quick.
BENCHMARKS = {
    "ingest": "bench_ingest.py",
    "features": "bench_features.py",
    "synth": "bench_synth.py",
    "train_scale": "bench_train_scale.py",
    "cremad": "bench_cremad.py",
    "stress_real": "bench_stress_real.py",  # needs the real Dreaddit CSVs (see its --data)
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run these alone")
    args = p.parse_args(argv)
    runs = []
    for name in args.only or BENCHMARKS:
        cmd = [sys.executable, str(HERE / BENCHMARKS[name])] + (["--quick"] if args.quick else [])
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd)
        runs.append({"benchmark": name, "command": cmd[1:], "returncode": rc, "wall_s": round(time.perf_counter() - t, 1)})
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "run_all.json").write_text(json.dumps({"quick": args.quick, "runs": runs}, indent=2) + "\n")
    print("\n" + "\n".join(f"{r['benchmark']:<12} rc={r['returncode']}  {r['wall_s']:>7.1f} s" for r in runs))
    return int(any(r["returncode"] for r in runs))


if __name__ == "__main__":
    sys.exit(main())
