# Shared helpers: config validation, the command that runs a stage, shard lists.
import sys

from affectflow import config as afc

# Validate the merged config (config.yaml + any --configfile) and fill schema defaults.
afc.validate(config)
# Tiny demo models on data other than the bundled sample: refused before any job (test_run: true allows).
from affectflow.ops import demo_guard

demo_guard.check(config)

RESULTS = config["results"]
LOGS = config["logs"]
# Stages run as `python -m affectflow <stage>` with the interpreter running Snakemake, so jobs
# use the same environment without relying on PATH.
AF = f"{sys.executable} -m affectflow"


def cfg_json(*sections):
    """The config sections a stage reads, as JSON for its --config-json. Passing only these means
    a change to one stage's settings reruns that stage, not every stage (params are a rerun trigger)."""
    return afc.to_json(afc.section(config, *sections))


def dataset_input(key, path, root=None):
    """Input function for a dataset file: when it is missing, the error names its config key
    (``instagram.root``, ``dreaddit.train``) instead of only the path."""

    def _input(wildcards):
        afc.require_inputs({key: path}, root=root)
        return str(path)

    return _input


IG_SHARDS = [f"{i:05d}" for i in range(config["instagram"]["shards"])]


wildcard_constraints:
    shard=r"\d{5}",
