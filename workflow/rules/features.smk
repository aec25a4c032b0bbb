# Instagram features: one job per shard and model stage, reading the posts shards and the image
# archive in place (nothing is extracted). GPU rules (profiles/slurm gives them a GPU): sentiment,
# text_embeddings, image_embeddings; each also runs on CPU. Every model rule takes its model's
# stamp (workflow/rules/models.smk) as input, and its job loads the model with the hub offline,
# failing at once, naming the model and the fetch command, when it is not on disk.
FEATURES = config["features"]
POSTS_SHARD = rules.instagram_ingest.output.shard


rule sentiment:
    """DistilBERT SST-2 on each post's caption and on its merged comments."""
    input:
        posts=POSTS_SHARD,
        models=model_stamps("sentiment"),
    output:
        **outputs_of("sentiment"),
    params:
        cfg=cfg_of("sentiment"),
    log:
        log_of("sentiment"),
    benchmark:
        benchmark_of("sentiment")
    threads: FEATURES["sentiment"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} sentiment --config-json {params.cfg:q} --posts {input.posts:q} --shard {wildcards.shard}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule text_embeddings:
    """SBERT on each post's caption + merged comments: one L2-normalised vector per post."""
    input:
        posts=POSTS_SHARD,
        models=model_stamps("text_embeddings"),
    output:
        **outputs_of("text_embeddings"),
    params:
        cfg=cfg_of("text_embeddings"),
    log:
        log_of("text_embeddings"),
    benchmark:
        benchmark_of("text_embeddings")
    threads: FEATURES["text_embedding"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} text-embeddings --config-json {params.cfg:q} --posts {input.posts:q} --shard {wildcards.shard}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule image_embeddings:
    """CLIP on every mapped image of every post (null + status when missing or unreadable), and
    each post's mean image embedding for training."""
    input:
        posts=POSTS_SHARD,
        plan=rules.instagram_plan.output.images,
        models=model_stamps("image_embeddings"),
    output:
        **outputs_of("image_embeddings"),
    params:
        cfg=cfg_of("image_embeddings"),
    log:
        log_of("image_embeddings"),
    benchmark:
        benchmark_of("image_embeddings")
    threads: FEATURES["image_embedding"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    shell:
        "{AF} image-embeddings --config-json {params.cfg:q} --posts {input.posts:q} --plan-images {input.plan:q}"
        " --shard {wildcards.shard} --out {output.images:q} --pooled {output.pooled:q} --threads {threads}"
        " > {log:q} 2>&1"


rule features_summary:
    """Status counts of every feature table, and the check that each joins the posts one to one."""
    input:
        posts=every_shard(POSTS_SHARD),
        sentiment=every_shard(rules.sentiment.output.shard),
        text=every_shard(rules.text_embeddings.output.shard),
        images=every_shard(rules.image_embeddings.output.images),
        pooled=every_shard(rules.image_embeddings.output.pooled),
    output:
        **outputs_of("features_summary"),
    log:
        log_of("features_summary"),
    benchmark:
        benchmark_of("features_summary")
    localrule: True
    resources:
        mem_mb=4000,
        runtime=15,
    shell:
        "{AF} features-summary --out {output:q} --posts {input.posts:q} --sentiment {input.sentiment:q}"
        " --text-embeddings {input.text:q} --image-embeddings {input.images:q} --image-pooled {input.pooled:q}"
        " > {log:q} 2>&1"


rule features:
    """Target: sentiment, text and image embeddings of every shard, and their summary."""
    input:
        rules.features_summary.output,
