# Test-only workflow: two rules named like the workflow's, one GPU (`sentiment`) and one CPU
# (`instagram_plan`), that record what SLURM gave their job. Run with --profile profiles/slurm,
# it shows that the profile's per-rule resources reach sbatch: a GPU for GPU rules only, and the
# cpus and memory the profile names.
import json
import os

PROBE_KEYS = ["SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_PER_GPU",
              "SLURM_MEM_PER_NODE", "SLURM_GPUS", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES"]


def record(path, rule, threads):
    with open(path, "w") as f:
        json.dump({"rule": rule, "threads": threads, **{k: os.environ.get(k) for k in PROBE_KEYS}}, f)


rule probe_all:
    input:
        "probe/sentiment.json",
        "probe/instagram_plan.json",


rule sentiment:
    output:
        "probe/sentiment.json",
    run:
        record(output[0], rule, threads)


rule instagram_plan:
    output:
        "probe/instagram_plan.json",
    run:
        record(output[0], rule, threads)
