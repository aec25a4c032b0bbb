"""Training and honest evaluation: engagement regression (Instagram), stress classification (Dreaddit).

The flow is the same for both tasks, and each step is one Snakemake rule:

1. ``dataset``  - join the feature tables, compute targets, assign splits, and write each split as
   memory-mapped arrays (``train/``, ``val/``, ``test/`` folders), so training streams mini-batches
   from disk at any size.
2. ``sweep``    - every (model, grid point, seed) trial trains on ``train`` and is scored on ``val``
   only; trials run as submitit job arrays. The rule's inputs do not include the test split.
3. ``final``    - the configuration each model kind chose on ``val`` is scored on ``test`` once per
   seed; metrics (with bootstrap intervals), predictions, plots and checkpoints are written.
"""
