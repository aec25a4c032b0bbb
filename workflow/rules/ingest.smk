# Instagram ingestion: plan once, then one job per shard reading the split archive in place.
import os
from pathlib import Path

IG_ROOT = Path(config["instagram"]["root"])


def plan_mem_mb(wildcards, input, attempt):
    """The plan holds the directories and the mapping in memory: ~1 KB per post at its peak
    (benchmarks/bench_ingest.py --plan-posts), ~15x the mapping file's size (~70 bytes a row)."""
    mapping_mb = os.path.getsize(input.mapping) / 2**20 if os.path.exists(input.mapping) else 0
    return int((2000 + 15 * mapping_mb) * attempt)


rule instagram_plan:
    """Central directories + mapping + influencers -> which posts exist, where, in which shard."""
    input:
        **{
            name: dataset_input(f"instagram.{key}", IG_ROOT / config["instagram"][key],
                                root=("instagram.root", IG_ROOT))
            for name, key in (("metadata", "metadata_zip"), ("images", "images_zip"),
                              ("mapping", "mapping"), ("influencers", "influencers"))
        },
    output:
        **outputs_of("instagram_plan"),
    params:
        cfg=cfg_of("instagram_plan"),
    log:
        log_of("instagram_plan"),
    benchmark:
        benchmark_of("instagram_plan")
    threads: 2
    resources:
        mem_mb=plan_mem_mb,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} instagram-plan --config-json {params.cfg:q} --posts {output.posts:q}"
        " --images {output.images:q} --summary {output.summary:q} > {log:q} 2>&1"


rule instagram_ingest:
    """One shard: read its post JSON from the volumes, parse, write Parquet (status per post)."""
    input:
        plan=rules.instagram_plan.output.posts,
        summary=rules.instagram_plan.output.summary,
    output:
        **outputs_of("instagram_ingest"),
    params:
        cfg=cfg_of("instagram_ingest"),
    log:
        log_of("instagram_ingest"),
    benchmark:
        benchmark_of("instagram_ingest")
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} instagram-ingest --config-json {params.cfg:q} --plan {input.plan:q}"
        " --plan-summary {input.summary:q} --shard {wildcards.shard} --out {output:q} > {log:q} 2>&1"


rule instagram_ingest_summary:
    """Counts by status over all shards, plus the plan's counts (duplicates, volumes, ...)."""
    input:
        summary=rules.instagram_plan.output.summary,
        shards=every_shard(rules.instagram_ingest.output.shard),
    output:
        **outputs_of("instagram_ingest_summary"),
    log:
        log_of("instagram_ingest_summary"),
    benchmark:
        benchmark_of("instagram_ingest_summary")
    localrule: True
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{AF} instagram-summary --plan-summary {input.summary:q} --out {output:q} {input.shards:q} > {log:q} 2>&1"


rule ingest:
    """Target: every posts shard and the ingestion summary."""
    input:
        rules.instagram_ingest_summary.output,
