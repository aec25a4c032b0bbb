# affectflow: social-media archives to affect features and models.
#   snakemake --profile profiles/local            # this machine
#   snakemake --profile profiles/slurm            # a SLURM cluster
# Targets: ingest, features, synthesize, dreaddit, cremad, train, report (`all` runs everything).
# Report:  snakemake --report results/report.html   (after a run; same --configfile)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/dreaddit.smk"
include: "workflow/rules/cremad.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


onstart:
    # One run per results folder: a second checkout (or a second Snakemake in another working
    # directory) writing the same results would sweep this run's temporaries and mix plans.
    from affectflow.ops.results_folder import hold_lock

    RESULTS_LOCK = hold_lock(RESULTS, f"checkout {workflow.basedir}")  # held until this process exits


rule all:
    default_target: True
    input:
        rules.ingest.input,
        rules.dreaddit.input,
        rules.cremad.input,
        rules.features.input,
        rules.train.input,
        rules.report.output,
