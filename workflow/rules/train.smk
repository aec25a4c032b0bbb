# Training: datasets -> sweeps (train/val only) -> final scoring on test, for both tasks.
# The sweep rules' inputs are the train and val split folders: model selection cannot read test.

# Paths, config slices and which optional jobs run: affectflow.layout, through common.smk.
_SWEEP = config["train"]["sweep"]

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
        posts=rules.instagram_ingest.output.shard,
        models=model_stamps("engagement_caption_embeddings"),
    output:
        **outputs_of("engagement_caption_embeddings"),
    params:
        cfg=cfg_of("engagement_caption_embeddings"),
    log:
        log_of("engagement_caption_embeddings"),
    benchmark:
        benchmark_of("engagement_caption_embeddings")
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-text --config-json {params.cfg:q} --kind captions --posts {input.posts:q} --out {output:q}"
        " --threads {threads} > {log:q} 2>&1"


def engagement_text(wildcards=None):
    if layout.caption_embeddings_used(config):
        return every_shard(rules.engagement_caption_embeddings.output.shard)
    return every_shard(rules.text_embeddings.output.shard)


rule engagement_dataset:
    """Posts + sentiment + text/pooled-image embeddings -> split folders (influencer split)."""
    input:
        posts=every_shard(rules.instagram_ingest.output.shard),
        sentiment=every_shard(rules.sentiment.output.shard),
        text=engagement_text(),
        image=every_shard(rules.image_embeddings.output.pooled),
    output:
        **outputs_of("engagement_dataset"),
    params:
        cfg=cfg_of("engagement_dataset"),
        out=path_of("engagement_dataset", "out"),
    log:
        log_of("engagement_dataset"),
    benchmark:
        benchmark_of("engagement_dataset")
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
        models=model_stamps("stress_text_embeddings"),
    output:
        **outputs_of("stress_text_embeddings"),
    params:
        cfg=cfg_of("stress_text_embeddings"),
    log:
        log_of("stress_text_embeddings"),
    benchmark:
        benchmark_of("stress_text_embeddings")
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-text --config-json {params.cfg:q} --kind dreaddit --posts {input.posts:q} --out {output:q}"
        " --threads {threads} > {log:q} 2>&1"


rule stress_text2_embeddings:
    """Dreaddit texts through a second sentence encoder, models.<train.stress.text2_encoder>
    (modality text2, e.g. all-mpnet-base-v2 beside MiniLM)."""
    input:
        posts=DD_POSTS,
        models=model_stamps("stress_text2_embeddings"),
    output:
        **outputs_of("stress_text2_embeddings"),
    params:
        cfg=cfg_of("stress_text2_embeddings"),
    log:
        log_of("stress_text2_embeddings"),
    benchmark:
        benchmark_of("stress_text2_embeddings")
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-text --config-json {params.cfg:q} --kind dreaddit --modality text2 --posts {input.posts:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule stress_dataset:
    """Dreaddit posts (train/val/test) + CLIP text and image embeddings (+ sentence-encoder texts,
    text2, lexical columns as configured) -> split folders."""
    input:
        posts=DD_POSTS,
        clip=every_shard(rules.dreaddit_clip.output.shard, "dreaddit"),
        text=every_job("stress_text_embeddings", rules.stress_text_embeddings.output.embeddings),
        text2=every_job("stress_text2_embeddings", rules.stress_text2_embeddings.output.embeddings),
    output:
        **outputs_of("stress_dataset"),
    params:
        cfg=cfg_of("stress_dataset"),
        out=path_of("stress_dataset", "out"),
    log:
        log_of("stress_dataset"),
    benchmark:
        benchmark_of("stress_dataset")
    localrule: True
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} train-stress-dataset --config-json {params.cfg:q} --posts {input.posts:q} --clip {input.clip:q}"
        " --text {input.text:q} --text2 {input.text2:q} --out {params.out:q} --summary {output.summary:q} > {log:q} 2>&1"


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
        **outputs_of("engagement_sweep"),
    params:
        cfg=cfg_of("engagement_sweep"),
        out=path_of("engagement_sweep", "out"),
    log:
        log_of("engagement_sweep"),
    benchmark:
        benchmark_of("engagement_sweep")
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
        **outputs_of("stress_sweep"),
    params:
        cfg=cfg_of("stress_sweep"),
        out=path_of("stress_sweep", "out"),
    log:
        log_of("stress_sweep"),
    benchmark:
        benchmark_of("stress_sweep")
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
        synth=every_shard(rules.synthesize_shard.output.shard, "dreaddit"),
        models=model_stamps("finetune_stress"),
    output:
        **outputs_of("finetune_stress"),
    params:
        cfg=cfg_of("finetune_stress"),
        out=path_of("finetune_stress", "out"),
    wildcard_constraints:
        seed=r"\d+",
    log:
        log_of("finetune_stress"),
    benchmark:
        benchmark_of("finetune_stress")
    threads: 4
    resources:
        mem_mb=lambda wc, attempt: 32000 * attempt,
        runtime=lambda wc, attempt: 180 * attempt,
    shell:
        "{AF} train-finetune --config-json {params.cfg:q} --seed {wildcards.seed} --posts {input.posts:q}"
        " --synth {input.synth:q} --out {params.out:q} --threads {threads} > {log:q} 2>&1"


rule finetune_text:
    """GPU (CPU works): fine-tune the text encoder models.<train.stress.finetune_text.model> with a
    stress head for one seed; epoch chosen on val, val probabilities kept for the ensemble, test scored once."""
    input:
        posts=DD_POSTS,
        models=model_stamps("finetune_text"),
    output:
        **outputs_of("finetune_text"),
    params:
        cfg=cfg_of("finetune_text"),
        out=path_of("finetune_text", "out"),
    wildcard_constraints:
        seed=r"\d+",
    log:
        log_of("finetune_text"),
    benchmark:
        benchmark_of("finetune_text")
    threads: 4
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    shell:
        "{AF} train-finetune-text --config-json {params.cfg:q} --seed {wildcards.seed} --posts {input.posts:q}"
        " --out {params.out:q} --threads {threads} > {log:q} 2>&1"


ENG_OUT = outputs_of("train_engagement")


rule train_engagement:
    """The selected engagement models scored once per seed on the test influencers."""
    input:
        selection=rules.engagement_sweep.output.selection,
        test=rules.engagement_dataset.output.test,
        dataset=rules.engagement_dataset.output.summary,
    output:
        metrics=report(ENG_OUT["metrics"], category="Engagement", labels={"figure": "metrics (JSON)"}),
        plot=report(ENG_OUT["plot"], caption="../report/pred_vs_actual.rst", category="Engagement",
                    labels={"figure": "predicted vs actual"}),
        predictions=ENG_OUT["predictions"],
        checkpoints=ENG_OUT["checkpoints"],
    params:
        cfg=cfg_of("train_engagement"),
        out=path_of("train_engagement", "out"),
    log:
        log_of("train_engagement"),
    benchmark:
        benchmark_of("train_engagement")
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} train-score --config-json {params.cfg:q} --task engagement --selection {input.selection:q}"
        " --test {input.test:q} --dataset {input.dataset:q} --out {params.out:q} > {log:q} 2>&1"


STRESS_OUT = outputs_of("train_stress")


rule train_stress:
    """The selected stress models (and the fine-tuned CLIP / text encoder) scored once per seed on the
    test split; the ensemble is chosen on the val split first."""
    input:
        selection=rules.stress_sweep.output.selection,
        test=rules.stress_dataset.output.test,
        dataset=rules.stress_dataset.output.summary,
        finetune=every_job("finetune_stress", rules.finetune_stress.output.result)
        + every_job("finetune_text", rules.finetune_text.output.result),
        val=rules.stress_dataset.output.val,
    output:
        metrics=report(STRESS_OUT["metrics"], category="Stress", labels={"figure": "metrics (JSON)"}),
        plot=report(STRESS_OUT["plot"], caption="../report/confusion_matrix.rst", category="Stress",
                    labels={"figure": "confusion matrices"}),
        predictions=STRESS_OUT["predictions"],
        checkpoints=STRESS_OUT["checkpoints"],
    params:
        cfg=cfg_of("train_stress"),
        out=path_of("train_stress", "out"),
    log:
        log_of("train_stress"),
    benchmark:
        benchmark_of("train_stress")
    threads: 1
    localrule: True
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} train-score --config-json {params.cfg:q} --task stress --selection {input.selection:q}"
        " --val {input.val:q} --test {input.test:q} --dataset {input.dataset:q} --out {params.out:q}"
        " --finetune {input.finetune:q} > {log:q} 2>&1"


rule train:
    """Target: both metrics files (engagement and stress) and their figures."""
    input:
        rules.train_engagement.output,
        rules.train_stress.output,
