# Dreaddit: read the two CSVs once, then per shard synthesize an image per post from its text and
# embed text + image with CLIP. Images live under {results}/dreaddit/images/ and are not declared
# outputs (a failed job's outputs are deleted; the images of a half-done shard must survive for
# the rerun to resume): each shard's index Parquet is the output, and the synthesis job keeps an
# image only after checking it (decodes, size, recipe).
DD = f"{RESULTS}/dreaddit"
DD_SHARDS = [f"{i:05d}" for i in range(config["dreaddit"]["shards"])]


def dd_cfg(*subsections, models=()):
    """The Dreaddit settings one rule reads, plus the models it loads (params are a rerun trigger:
    a CLIP setting must not rerun synthesis)."""
    d = config["dreaddit"]
    m = config["models"]
    return afc.to_json({
        "results": RESULTS,
        "dreaddit": {"shards": d["shards"], **{k: d[k] for k in subsections}},
        "models": {"dir": m["dir"], **{k: m[k] for k in models if k in m}},
    })


def synth_models():
    keys = ["diffusion"]
    if config["dreaddit"]["synthesis"]["safety_checker"] and "safety_checker" in config["models"]:
        keys.append("safety_checker")
    return keys


rule dreaddit_posts:
    """Both CSVs by column name -> one row per record (faults labelled), train/val/test split."""
    input:
        train=dataset_input("dreaddit.train", config["dreaddit"]["train"]),
        test=dataset_input("dreaddit.test", config["dreaddit"]["test"]),
    output:
        posts=f"{DD}/posts/posts.parquet",
        summary=f"{DD}/posts_summary.json",
    params:
        cfg=dd_cfg("train", "test", "split"),
    log:
        f"{LOGS}/dreaddit/posts.log",
    benchmark:
        f"{LOGS}/benchmarks/dreaddit/posts.tsv"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{AF} dreaddit-posts --config-json {params.cfg:q} --out {output.posts:q} --summary {output.summary:q} > {log:q} 2>&1"


rule synthesize_shard:
    """One shard: an image per post from its text (GPU); keeps the valid images of earlier runs."""
    input:
        posts=rules.dreaddit_posts.output.posts,
        models=[model_stamp(k) for k in synth_models()],
    output:
        f"{DD}/synth/shard-{{shard}}.parquet",
    params:
        cfg=lambda wc: dd_cfg("synthesis", models=synth_models()),  # a function: the template's {text} is no wildcard
        images=f"{DD}/images",
    log:
        f"{LOGS}/dreaddit/synthesize/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/dreaddit/synthesize/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    shell:
        "{AF} dreaddit-synthesize --config-json {params.cfg:q} --posts {input.posts:q} --shard {wildcards.shard}"
        " --out {output:q} --images {params.images:q} --threads {threads} > {log:q} 2>&1"


rule dreaddit_clip:
    """One shard: CLIP embeddings of each post's text and synthesized image (GPU)."""
    input:
        posts=rules.dreaddit_posts.output.posts,
        synth=rules.synthesize_shard.output,
        model=model_stamp("clip"),
    output:
        f"{DD}/clip/shard-{{shard}}.parquet",
    params:
        cfg=dd_cfg("clip", models=["clip"]),
    log:
        f"{LOGS}/dreaddit/clip/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/dreaddit/clip/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} dreaddit-clip --config-json {params.cfg:q} --posts {input.posts:q} --synth {input.synth:q}"
        " --shard {wildcards.shard} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule dreaddit_summary:
    """Counts of every Dreaddit stage, and the check that the tables join one-to-one on post_id."""
    input:
        posts=rules.dreaddit_posts.output.posts,
        posts_summary=rules.dreaddit_posts.output.summary,
        synth=expand(f"{DD}/synth/shard-{{shard}}.parquet", shard=DD_SHARDS),
        clip=expand(f"{DD}/clip/shard-{{shard}}.parquet", shard=DD_SHARDS),
    output:
        f"{DD}/summary.json",
    log:
        f"{LOGS}/dreaddit/summary.log",
    benchmark:
        f"{LOGS}/benchmarks/dreaddit/summary.tsv"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{AF} dreaddit-summary --posts {input.posts:q} --posts-summary {input.posts_summary:q}"
        " --synth {input.synth:q} --clip {input.clip:q} --out {output:q} > {log:q} 2>&1"


rule synthesize:
    """Target: every Dreaddit shard's images and index."""
    input:
        expand(f"{DD}/synth/shard-{{shard}}.parquet", shard=DD_SHARDS),


rule dreaddit:
    """Target: the whole Dreaddit branch (posts, images, CLIP embeddings, summary)."""
    input:
        rules.dreaddit_summary.output,
