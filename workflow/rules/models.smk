# Models: fetched once on a machine with internet (the login node, where local rules run), then
# loaded offline by every compute job. Each model rule takes its model's stamp as input, so
# `snakemake features` fetches what is missing first; local folders and pypi: models are only
# checked. A stamp depends on its own model's config only, so changing one model reruns only the
# stages that use it.
# MODEL_KEYS and model_stamp(): common.smk.


rule fetch_model:
    """Download one configured hub model into models.dir (skipped when present), or check a local one."""
    output:
        **outputs_of("fetch_model"),
    params:
        cfg=cfg_of("fetch_model"),
    log:
        log_of("fetch_model"),
    benchmark:
        benchmark_of("fetch_model")
    wildcard_constraints:
        key="|".join(MODEL_KEYS),
    localrule: True
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{AF} fetch-models --config-json {params.cfg:q} --only {wildcards.key} --stamp {output:q} > {log:q} 2>&1"


rule fetch_models:
    """Target: every configured model on disk (run on a login node with internet)."""
    input:
        [model_stamp(k) for k in MODEL_KEYS],
