# CREMA-D: list and probe every clip once, then per shard read the audio and video where they lie
# (eGeMAPS on CPU; CLIP frames and the optional speech encoder on GPU), embed the 12 sentences
# (the text-only control), and train the emotion models split by actor.
CM = f"{RESULTS}/cremad"
CM_SHARDS = [f"{i:05d}" for i in range(config["cremad"]["shards"])]
CM_SPEECH = config["cremad"]["audio"]["speech"]


def cm_cfg(*subsections, models=()):
    """The CREMA-D settings one rule reads, plus the models it loads (params are a rerun trigger:
    a training setting must not rerun the video stage)."""
    c = config["cremad"]
    m = config["models"]
    return afc.to_json({
        "results": RESULTS,
        "cremad": {"shards": c["shards"], **{k: c[k] for k in subsections}},
        "models": {"dir": m["dir"], **{k: m[k] for k in models if k in m}},
    })


rule cremad_clips:
    """Every clip a file or CSV names -> one row with labels, demographics, votes and a status per modality."""
    input:
        root=config["cremad"]["root"],
    output:
        clips=f"{CM}/clips/clips.parquet",
        summary=f"{CM}/clips_summary.json",
    params:
        cfg=cm_cfg("root", "audio_dir", "video_dir", "video_extensions", "demographics", "sentences", "votes",
                   "min_duration_s", "silence_dbfs", "split"),
    log:
        f"{LOGS}/cremad/clips.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/clips.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    shell:
        "{AF} cremad-clips --config-json {params.cfg:q} --out {output.clips:q} --summary {output.summary:q} > {log:q} 2>&1"


rule cremad_egemaps:
    """One shard: eGeMAPS v02 functionals of each clip's WAV (openSMILE, CPU)."""
    input:
        clips=rules.cremad_clips.output.clips,
    output:
        f"{CM}/egemaps/shard-{{shard}}.parquet",
    params:
        cfg=cm_cfg("audio"),
    log:
        f"{LOGS}/cremad/egemaps/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/egemaps/shard-{{shard}}.tsv"
    threads: config["cremad"]["audio"]["workers"]
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} cremad-egemaps --config-json {params.cfg:q} --clips {input.clips:q} --shard {wildcards.shard}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule cremad_speech:
    """One shard: the learned speech encoder (models.speech) on each clip's WAV (GPU)."""
    input:
        clips=rules.cremad_clips.output.clips,
        model=model_stamp("speech"),
    output:
        f"{CM}/speech/shard-{{shard}}.parquet",
    params:
        cfg=cm_cfg("audio", models=["speech"]),
    log:
        f"{LOGS}/cremad/speech/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/speech/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} cremad-speech --config-json {params.cfg:q} --clips {input.clips:q} --shard {wildcards.shard}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule cremad_video:
    """One shard: frames decoded in place (PyAV), centre crop, CLIP image tower, pooled over time (GPU)."""
    input:
        clips=rules.cremad_clips.output.clips,
        model=model_stamp("clip"),
    output:
        f"{CM}/video/shard-{{shard}}.parquet",
    params:
        cfg=cm_cfg("video", models=["clip"]),
    log:
        f"{LOGS}/cremad/video/shard-{{shard}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/video/shard-{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} cremad-video --config-json {params.cfg:q} --clips {input.clips:q} --shard {wildcards.shard}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule cremad_text:
    """Every clip's sentence through models.text_embedding: the text-only control."""
    input:
        clips=rules.cremad_clips.output.clips,
        model=model_stamp("text_embedding"),
    output:
        f"{CM}/text/text.parquet",
    params:
        cfg=cm_cfg("audio", "text", models=["text_embedding"]),
    log:
        f"{LOGS}/cremad/text.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/text.tsv"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
    shell:
        "{AF} cremad-text --config-json {params.cfg:q} --clips {input.clips:q} --out {output:q} --threads {threads}"
        " > {log:q} 2>&1"


def cm_features(kind):
    models = config["cremad"]["train"]["models"]
    wanted = {"audio": "audio", "speech": "speech", "video": "video", "text": "text"}[kind]
    if wanted not in models and "fusion" not in models:
        return []
    if kind == "speech" and not CM_SPEECH:
        return []
    if kind == "text":
        return [rules.cremad_text.output[0]]
    return expand(f"{CM}/{'egemaps' if kind == 'audio' else kind}/shard-{{shard}}.parquet", shard=CM_SHARDS)


rule cremad_train:
    """Emotion models per modality and fused (three stages), split by actor; scored on the test actors."""
    input:
        clips=rules.cremad_clips.output.clips,
        audio=cm_features("audio"),
        speech=cm_features("speech"),
        video=cm_features("video"),
        text=cm_features("text"),
    output:
        metrics=f"{CM}/model/metrics.json",
        predictions=f"{CM}/model/predictions.parquet",
    params:
        cfg=cm_cfg("train", "split"),
        out_dir=f"{CM}/model",
    log:
        f"{LOGS}/cremad/train.log",
    benchmark:
        f"{LOGS}/benchmarks/cremad/train.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} cremad-train --config-json {params.cfg:q} --clips {input.clips:q} --audio {input.audio:q}"
        " --speech {input.speech:q} --video {input.video:q} --text {input.text:q} --out-dir {params.out_dir:q}"
        " --threads {threads} > {log:q} 2>&1"


rule cremad:
    """Target: the whole CREMA-D branch (clips, features, models)."""
    input:
        rules.cremad_train.output,
