# CREMA-D: list and probe every clip once, then per shard read the audio and video where they lie
# (eGeMAPS on CPU; CLIP frames and the optional speech encoder on GPU), embed the 12 sentences
# (the text-only control), and train the emotion models split by actor.
# Paths, config slices and shard lists: affectflow.layout, through common.smk.


def cm_features(kind):
    """The feature files cremad_train is given for one modality: every feature stage's jobs
    (layout.jobs: the speech encoder's only with cremad.audio.speech); the training reads the
    modalities cremad.train.models names."""
    if kind == "text":
        return [rules.cremad_text.output.text]
    name = {"audio": "cremad_egemaps", "speech": "cremad_speech", "video": "cremad_video"}[kind]
    return every_job(name, layout.outputs(name, config)["shard"])


rule cremad_clips:
    """Every clip a file or CSV names -> one row with labels, demographics, votes and a status per modality."""
    input:
        root=config["cremad"]["root"],
    output:
        **outputs_of("cremad_clips"),
    params:
        cfg=cfg_of("cremad_clips"),
    log:
        log_of("cremad_clips"),
    benchmark:
        benchmark_of("cremad_clips")
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
        **outputs_of("cremad_egemaps"),
    params:
        cfg=cfg_of("cremad_egemaps"),
    log:
        log_of("cremad_egemaps"),
    benchmark:
        benchmark_of("cremad_egemaps")
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
        models=model_stamps("cremad_speech"),
    output:
        **outputs_of("cremad_speech"),
    params:
        cfg=cfg_of("cremad_speech"),
    log:
        log_of("cremad_speech"),
    benchmark:
        benchmark_of("cremad_speech")
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
        models=model_stamps("cremad_video"),
    output:
        **outputs_of("cremad_video"),
    params:
        cfg=cfg_of("cremad_video"),
    log:
        log_of("cremad_video"),
    benchmark:
        benchmark_of("cremad_video")
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
        models=model_stamps("cremad_text"),
    output:
        **outputs_of("cremad_text"),
    params:
        cfg=cfg_of("cremad_text"),
    log:
        log_of("cremad_text"),
    benchmark:
        benchmark_of("cremad_text")
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
    shell:
        "{AF} cremad-text --config-json {params.cfg:q} --clips {input.clips:q} --out {output:q} --threads {threads}"
        " > {log:q} 2>&1"


rule cremad_train:
    """Emotion models per modality and fused (three stages), split by actor; scored on the test actors."""
    input:
        clips=rules.cremad_clips.output.clips,
        audio=cm_features("audio"),
        speech=cm_features("speech"),
        video=cm_features("video"),
        text=cm_features("text"),
    output:
        metrics=outputs_of("cremad_train")["metrics"],
        predictions=outputs_of("cremad_train")["predictions"],
        plot=report(outputs_of("cremad_train")["plot"], caption="../report/cremad_confusion.rst", category="CREMA-D",
                    labels={"figure": "confusion matrices"}),
    params:
        cfg=cfg_of("cremad_train"),
        out=path_of("cremad_train", "out"),
    log:
        log_of("cremad_train"),
    benchmark:
        benchmark_of("cremad_train")
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    shell:
        "{AF} cremad-train --config-json {params.cfg:q} --clips {input.clips:q} --audio {input.audio:q}"
        " --speech {input.speech:q} --video {input.video:q} --text {input.text:q} --out-dir {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"


rule cremad:
    """Target: the whole CREMA-D branch (clips, features, models)."""
    input:
        rules.cremad_train.output,
