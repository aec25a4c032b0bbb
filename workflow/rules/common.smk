# Shared helpers: config validation, the command that runs a stage, shard lists.
import sys

from affectflow import config as afc

# Validate the merged config (config.yaml + any --configfile) and fill schema defaults.
afc.validate(config)

RESULTS = config["results"]
LOGS = config["logs"]
# Stages run as `python -m affectflow <stage>` with the interpreter running Snakemake, so jobs
# use the same environment without relying on PATH.
AF = f"{sys.executable} -m affectflow"


def cfg_json(*sections):
    """The config sections a stage reads, as JSON for its --config-json. Passing only these means
    a change to one stage's settings reruns that stage, not every stage (params are a rerun trigger)."""
    return afc.to_json(afc.section(config, *sections))


IG_SHARDS = [f"{i:05d}" for i in range(config["instagram"]["shards"])]


wildcard_constraints:
    shard=r"\d{5}",
