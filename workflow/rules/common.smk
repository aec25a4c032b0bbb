# Shared helpers: config validation, the command that runs a stage, and the rules' paths, config
# slices and shard lists, all read from affectflow.layout (the one table of them, which
# `affectflow status` reads too). Every helper used by more than one .smk file lives here.
import sys

from affectflow import config as afc
from affectflow import layout

# Validate the merged config (config.yaml + any --configfile) and fill schema defaults.
afc.validate(config)
# Tiny demo models on data other than the bundled sample: refused before any job (test_run: true allows).
from affectflow.ops import demo_guard

demo_guard.check(config)
if demo_guard.notice(config):  # allowed (the bundled sample, or test_run), but never silent
    print(demo_guard.notice(config), file=sys.stderr)

RESULTS = config["results"]
LOGS = config["logs"]
# Stages run as `python -m affectflow <stage>` with the interpreter running Snakemake, so jobs
# use the same environment without relying on PATH.
AF = f"{sys.executable} -m affectflow"

IG_SHARDS = layout.shard_ids(config, "instagram")
DD_SHARDS = layout.shard_ids(config, "dreaddit")
MODEL_KEYS = layout.model_keys(config)


def dataset_input(key, path, root=None):
    """Input function for a dataset file: when it is missing, the error names its config key
    (``instagram.root``, ``dreaddit.train``) instead of only the path."""

    def _input(wildcards):
        afc.require_inputs({key: path}, root=root)
        return str(path)

    return _input


def outputs_of(rule):
    """The rule's outputs from the layout, name -> pattern (folders wrapped in directory()):
    `output: **outputs_of("x")`, or pick one by name to wrap it in report()."""
    folders = layout.RULES[rule].directories
    return {k: directory(p) if k in folders else p for k, p in layout.outputs(rule, config).items()}


def log_of(rule):
    return layout.log(rule, config)


def benchmark_of(rule):
    return layout.benchmark(rule, config)


def path_of(rule, name):
    """A path the rule's job is given besides its outputs (layout.RuleLayout.paths)."""
    return layout.path(rule, name, config)


def cfg_of(rule):
    """The rule's params.cfg: the config its job reads, as JSON for --config-json (layout.params,
    one slicing rule for every stage). Params are a rerun trigger, so only what the job reads is
    passed: a CLIP setting does not rerun synthesis. A function of the wildcards, since a value
    such as the prompt template's {text} must not be read as one."""
    return lambda wildcards: afc.to_json(layout.params(rule, config, dict(wildcards.items())))


def model_stamp(key):
    """The stamp fetch_model writes for models.<key>: the input that makes a job wait for its model."""
    return layout.outputs("fetch_model", config, {"key": key})["stamp"]


def model_stamps(rule):
    """The stamps of the models the rule loads (the same list its params.cfg carries)."""
    return [model_stamp(k) for k in layout.RULES[rule].model_keys(config)]


def every_shard(pattern, dataset="instagram"):
    """A per-shard pattern expanded over the dataset's shards (IG_SHARDS or DD_SHARDS)."""
    return expand(pattern, shard=IG_SHARDS if dataset == "instagram" else DD_SHARDS)



def every_job(rule, pattern):
    """A pattern of the rule's expanded over the rule's jobs (layout.jobs: none when the config
    turns the rule off, e.g. finetune_stress without train.stress.finetune.enabled)."""
    return [expand(pattern, **{k: [v] for k, v in wc.items()})[0] for wc in layout.jobs(rule, config)]


wildcard_constraints:
    shard=r"\d{5}",
