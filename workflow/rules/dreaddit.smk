# Dreaddit: read the two CSVs once, then per shard synthesize an image per post from its text and
# embed text + image with CLIP. Images live under {results}/dreaddit/images/ and are not declared
# outputs (a failed job's outputs are deleted; the images of a half-done shard must survive for
# the rerun to resume): each shard's index Parquet is the output, and the synthesis job keeps an
# image only after checking it (decodes, size, recipe).
# Paths, config slices and shard lists (DD_SHARDS): affectflow.layout, through common.smk.


rule dreaddit_posts:
    """Both CSVs by column name -> one row per record (faults labelled), train/val/test split."""
    input:
        train=dataset_input("dreaddit.train", config["dreaddit"]["train"]),
        test=dataset_input("dreaddit.test", config["dreaddit"]["test"]),
    output:
        **outputs_of("dreaddit_posts"),
    params:
        cfg=cfg_of("dreaddit_posts"),
    log:
        log_of("dreaddit_posts"),
    benchmark:
        benchmark_of("dreaddit_posts")
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
        models=model_stamps("synthesize_shard"),
    output:
        **outputs_of("synthesize_shard"),
    params:
        cfg=cfg_of("synthesize_shard"),
        images=path_of("synthesize_shard", "images"),
    log:
        log_of("synthesize_shard"),
    benchmark:
        benchmark_of("synthesize_shard")
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
        models=model_stamps("dreaddit_clip"),
    output:
        **outputs_of("dreaddit_clip"),
    params:
        cfg=cfg_of("dreaddit_clip"),
    log:
        log_of("dreaddit_clip"),
    benchmark:
        benchmark_of("dreaddit_clip")
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
        synth=every_shard(rules.synthesize_shard.output.shard, "dreaddit"),
        clip=every_shard(rules.dreaddit_clip.output.shard, "dreaddit"),
    output:
        **outputs_of("dreaddit_summary"),
    log:
        log_of("dreaddit_summary"),
    benchmark:
        benchmark_of("dreaddit_summary")
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
        every_shard(rules.synthesize_shard.output.shard, "dreaddit"),


rule dreaddit:
    """Target: the whole Dreaddit branch (posts, images, CLIP embeddings, summary)."""
    input:
        rules.dreaddit_summary.output,
