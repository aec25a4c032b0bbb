# Training: datasets -> sweeps (train/val only) -> final scoring on test, for both tasks.
# The sweep rules' inputs are the train and val split folders: model selection cannot read test.

ENG = f"{RESULTS}/models/engagement"
STRESS = f"{RESULTS}/models/stress"
TRAIN_SEEDS = config["train"]["seeds"]
FINETUNE = config["train"]["stress"]["finetune"]["enabled"]
_SWEEP = config["train"]["sweep"]

TEXT_ENCODER = config["train"]["stress"]["text_encoder"]
ENG_TEXT = config["train"]["engagement"]["text_features"]

# The Dreaddit posts table, as the Dreaddit stage's rule names it (DD_SHARDS: dreaddit.smk).
DD_POSTS = rules.dreaddit_posts.output.posts


def snakemake_executor(wildcards=None):
    """The executor this Snakemake runs with (local, slurm, ...): `train.sweep.executor: auto`
    sends the trials where the rest of the workflow goes."""
    plugin = workflow.executor_plugin
    return getattr(plugin, "name", None) or "local"


def sweep_threads(wildcards):
    """Local sweep tasks run on this node: reserve their cores. On SLURM the rule only waits."""
    ex = _SWEEP["executor"] if _SWEEP["executor"] != "auto" else snakemake_executor()
    if ex == "slurm":
        return 1
    return max(1, _SWEEP["max_parallel_jobs"] * _SWEEP["cpus_per_job"])


rule engagement_caption_embeddings:
    """One shard's captions alone through models.text_embedding (the features stage's text vector
    includes the comments, a consequence of the engagement being predicted)."""
    input:
        posts=rules.instagram_ingest.output[0],
        model=model_stamp("text_embedding"),
    output:
        f"{ENG}/caption_embeddings/shard-{{shard}}.parquet",
    params:
        cfg=cfg_json("train", "models"),
    log:
        f"{LOGS}/train/caption_embeddings/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/caption_embeddings/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-text --config-json {params.cfg:q} --kind captions --posts {input.posts:q} --out {output:q}"
        " --threads {threads} > {log:q} 2>&1"


def engagement_text(wildcards=None):
    if ENG_TEXT == "caption":
        return _shards(rules.engagement_caption_embeddings.output[0])
    return _shards(rules.text_embeddings.output[0])


rule engagement_dataset:
    """Posts + sentiment + text/pooled-image embeddings -> split folders (influencer split)."""
    input:
        posts=_shards(rules.instagram_ingest.output[0]),
        sentiment=_shards(rules.sentiment.output[0]),
        text=engagement_text(),
        image=_shards(rules.image_embeddings.output.pooled),
    output:
        train=directory(f"{ENG}/data/train"),
        val=directory(f"{ENG}/data/val"),
        test=directory(f"{ENG}/data/test"),
        summary=f"{ENG}/data/dataset.json",
    params:
        cfg=cfg_json("train"),
        out=f"{ENG}/data",
    log:
        f"{LOGS}/train/engagement_dataset.log",
    benchmark:
        f"{LOGS}/benchmarks/train/engagement_dataset.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    shell:
        "{AF} train-engagement-dataset --config-json {params.cfg:q} --posts {input.posts:q}"
        " --sentiment {input.sentiment:q} --text {input.text:q} --image {input.image:q}"
        " --out {params.out:q} --summary {output.summary:q} > {log:q} 2>&1"


rule stress_text_embeddings:
    """Dreaddit texts through the sentence encoder of models.text_embedding (train.stress.text_encoder)."""
    input:
        posts=DD_POSTS,
        model=model_stamp("text_embedding"),
    output:
        f"{STRESS}/text_embeddings.parquet",
    params:
        cfg=cfg_json("train", "models"),
    log:
        f"{LOGS}/train/stress_text_embeddings.log",
    benchmark:
        f"{LOGS}/benchmarks/train/stress_text_embeddings.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-text --config-json {params.cfg:q} --kind dreaddit --posts {input.posts:q} --out {output:q}"
        " --threads {threads} > {log:q} 2>&1"


rule stress_dataset:
    """Dreaddit posts (train/val/test) + CLIP text and image embeddings -> split folders."""
    input:
        posts=DD_POSTS,
        clip=expand(rules.dreaddit_clip.output[0], shard=DD_SHARDS),
        text=rules.stress_text_embeddings.output if TEXT_ENCODER == "text_embedding" else [],
    output:
        train=directory(f"{STRESS}/data/train"),
        val=directory(f"{STRESS}/data/val"),
        test=directory(f"{STRESS}/data/test"),
        summary=f"{STRESS}/data/dataset.json",
    params:
        cfg=cfg_json("train"),
        out=f"{STRESS}/data",
    log:
        f"{LOGS}/train/stress_dataset.log",
    benchmark:
        f"{LOGS}/benchmarks/train/stress_dataset.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} train-stress-dataset --config-json {params.cfg:q} --posts {input.posts:q} --clip {input.clip:q}"
        " --text {input.text:q} --out {params.out:q} --summary {output.summary:q} > {log:q} 2>&1"


def run_sweep_job(task, input, params, threads, log):
    """The sweep rules' job (a run block: Snakemake's executor is known only at run time, and
    must not be a param, since params are a rerun trigger)."""
    shell(
        "{AF} train-sweep --config-json {params.cfg:q} --task " + task + " --train {input.train:q}"
        " --val {input.val:q} --out {params.out:q} --threads {threads}"
        f" --snakemake-executor {snakemake_executor()} > {{log:q}} 2>&1"
    )


rule engagement_sweep:
    """Every engagement model x grid point x seed on train, scored on val (submitit job arrays)."""
    input:
        train=rules.engagement_dataset.output.train,
        val=rules.engagement_dataset.output.val,
    output:
        selection=f"{ENG}/sweep/selection.json",
        trials=f"{ENG}/sweep/trials.parquet",
    params:
        cfg=cfg_json("train"),
        out=f"{ENG}/sweep",
    log:
        f"{LOGS}/train/engagement_sweep.log",
    benchmark:
        f"{LOGS}/benchmarks/train/engagement_sweep.tsv"
    localrule: True  # it runs the trials as a job array (slurm) or processes (local): never queue the waiter
    threads: sweep_threads
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 24 * 60 * attempt,
    run:
        run_sweep_job("engagement", input, params, threads, log)


rule stress_sweep:
    """Every stress head x grid point x seed on train, scored on val (submitit job arrays)."""
    input:
        train=rules.stress_dataset.output.train,
        val=rules.stress_dataset.output.val,
    output:
        selection=f"{STRESS}/sweep/selection.json",
        trials=f"{STRESS}/sweep/trials.parquet",
    params:
        cfg=cfg_json("train"),
        out=f"{STRESS}/sweep",
    log:
        f"{LOGS}/train/stress_sweep.log",
    benchmark:
        f"{LOGS}/benchmarks/train/stress_sweep.tsv"
    localrule: True
    threads: sweep_threads
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 24 * 60 * attempt,
    run:
        run_sweep_job("stress", input, params, threads, log)


rule finetune_stress:
    """GPU: fine-tune CLIP with a stress head for one seed; epoch chosen on val, then test scored once."""
    input:
        posts=DD_POSTS,
        synth=expand(rules.synthesize_shard.output[0], shard=DD_SHARDS),
        model=model_stamp("clip"),
    output:
        result=f"{STRESS}/finetune/seed-{{seed}}/result.json",
        predictions=f"{STRESS}/finetune/seed-{{seed}}/test_predictions.parquet",
        model=f"{STRESS}/finetune/seed-{{seed}}/model.safetensors",
    params:
        cfg=cfg_json("train", "models"),
        out=f"{STRESS}/finetune/seed-{{seed}}",
    wildcard_constraints:
        seed=r"\d+",
    log:
        f"{LOGS}/train/finetune_stress/seed-{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/finetune_stress/seed-{{seed}}.tsv"
    threads: 4
    resources:
        mem_mb=lambda wc, attempt: 32000 * attempt,
        runtime=lambda wc, attempt: 180 * attempt,
    shell:
        "{AF} train-finetune --config-json {params.cfg:q} --seed {wildcards.seed} --posts {input.posts:q}"
        " --synth {input.synth:q} --out {params.out:q} --threads {threads} > {log:q} 2>&1"


rule train_engagement:
    """The selected engagement models scored once per seed on the test influencers."""
    input:
        selection=rules.engagement_sweep.output.selection,
        test=rules.engagement_dataset.output.test,
        dataset=rules.engagement_dataset.output.summary,
    output:
        metrics=report(f"{ENG}/metrics.json", category="Engagement", labels={"figure": "metrics (JSON)"}),
        plot=report(f"{ENG}/pred_vs_actual.png", caption="../report/pred_vs_actual.rst", category="Engagement",
                    labels={"figure": "predicted vs actual"}),
        predictions=f"{ENG}/predictions.parquet",
        checkpoints=directory(f"{ENG}/checkpoints"),
    params:
        cfg=cfg_json("train", "models"),  # models: the encoders named in metrics, the demo notice
        out=ENG,
    log:
        f"{LOGS}/train/train_engagement.log",
    benchmark:
        f"{LOGS}/benchmarks/train/train_engagement.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-score --config-json {params.cfg:q} --task engagement --selection {input.selection:q}"
        " --test {input.test:q} --dataset {input.dataset:q} --out {params.out:q} > {log:q} 2>&1"


rule train_stress:
    """The selected stress models (and the fine-tuned CLIP) scored once per seed on the test split."""
    input:
        selection=rules.stress_sweep.output.selection,
        test=rules.stress_dataset.output.test,
        dataset=rules.stress_dataset.output.summary,
        finetune=expand(rules.finetune_stress.output.result, seed=TRAIN_SEEDS) if FINETUNE else [],
    output:
        metrics=report(f"{STRESS}/metrics.json", category="Stress", labels={"figure": "metrics (JSON)"}),
        plot=report(f"{STRESS}/confusion_matrix.png", caption="../report/confusion_matrix.rst", category="Stress",
                    labels={"figure": "confusion matrices"}),
        predictions=f"{STRESS}/predictions.parquet",
        checkpoints=directory(f"{STRESS}/checkpoints"),
    params:
        cfg=cfg_json("train", "models"),  # models: the encoders named in metrics, the demo notice
        out=STRESS,
    log:
        f"{LOGS}/train/train_stress.log",
    benchmark:
        f"{LOGS}/benchmarks/train/train_stress.tsv"
    threads: 1
    localrule: True
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} train-score --config-json {params.cfg:q} --task stress --selection {input.selection:q}"
        " --test {input.test:q} --dataset {input.dataset:q} --out {params.out:q}"
        " --finetune {input.finetune:q} > {log:q} 2>&1"


rule train:
    """Target: both metrics files (engagement and stress) and their figures."""
    input:
        rules.train_engagement.output,
        rules.train_stress.output,
