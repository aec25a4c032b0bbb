# Instagram features: one job per shard and model stage, reading the posts shards and the image
# archive in place (nothing is extracted). GPU rules (profiles/slurm gives them a GPU): sentiment,
# text_embeddings, image_embeddings; each also runs on CPU. Every model rule takes its model's
# stamp (workflow/rules/models.smk) as input, and its job loads the model with the hub offline,
# failing at once, naming the model and the fetch command, when it is not on disk.
from affectflow.features.config import stage_config as feature_stage_config

FEATURES = config["features"]
POSTS_SHARD = f"{RESULTS}/instagram/posts/shard-{{shard}}.parquet"


def feature_cfg(stage, model_key, *sections):
    """Only what the stage reads: device, precision, its own settings, its model (+ sections)."""
    cfg = feature_stage_config(config, stage, model_key)
    cfg.update({k: config[k] for k in sections})
    return afc.to_json(cfg)


rule sentiment:
    """DistilBERT SST-2 on each post's caption and on its merged comments."""
    input:
        posts=POSTS_SHARD,
        model=model_stamp("sentiment"),
    output:
        f"{RESULTS}/instagram/sentiment/shard-{{shard}}.parquet",
    params:
        cfg=feature_cfg("sentiment", "sentiment"),
    log:
        f"{LOGS}/instagram/sentiment/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/instagram/sentiment/shard-{{shard}}.tsv"
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
        model=model_stamp("text_embedding"),
    output:
        f"{RESULTS}/instagram/text_embeddings/shard-{{shard}}.parquet",
    params:
        cfg=feature_cfg("text_embedding", "text_embedding"),
    log:
        f"{LOGS}/instagram/text_embeddings/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/instagram/text_embeddings/shard-{{shard}}.tsv"
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
        model=model_stamp("clip"),
    output:
        images=f"{RESULTS}/instagram/image_embeddings/shard-{{shard}}.parquet",
        pooled=f"{RESULTS}/instagram/image_pooled/shard-{{shard}}.parquet",
    params:
        cfg=feature_cfg("image_embedding", "clip", "instagram"),
    log:
        f"{LOGS}/instagram/image_embeddings/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/instagram/image_embeddings/shard-{{shard}}.tsv"
    threads: FEATURES["image_embedding"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    shell:
        "{AF} image-embeddings --config-json {params.cfg:q} --posts {input.posts:q} --plan-images {input.plan:q}"
        " --shard {wildcards.shard} --out {output.images:q} --pooled {output.pooled:q} --threads {threads}"
        " > {log:q} 2>&1"


def _shards(path):
    return expand(path, shard=IG_SHARDS)


rule features_summary:
    """Status counts of every feature table, and the check that each joins the posts one to one."""
    input:
        posts=_shards(POSTS_SHARD),
        sentiment=_shards(rules.sentiment.output[0]),
        text=_shards(rules.text_embeddings.output[0]),
        images=_shards(rules.image_embeddings.output.images),
        pooled=_shards(rules.image_embeddings.output.pooled),
    output:
        f"{RESULTS}/instagram/features_summary.json",
    log:
        f"{LOGS}/instagram/features_summary.log",
    benchmark:
        f"{LOGS}/benchmarks/instagram/features_summary.tsv"
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
