"""Stage ``ingest`` (workflow/rules/ingest.smk): the Instagram archives planned, read in place and parsed into posts shards."""
