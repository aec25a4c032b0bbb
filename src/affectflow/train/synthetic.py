"""Feature tables with planted signal, written to the upstream stages' contract paths and schemas.

The training stage is tested (and benchmarked at scale) without GPUs or model weights: these
writers produce exactly what the feature and Dreaddit stages produce — same paths, same schemas
from :mod:`affectflow.tables`, one row per post, nulls where the contract puts them — with
embeddings that carry a known amount of signal about the target, so a test can tell a model that
learns from one that does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from .. import tables
from ..io.arrays import embedding_array
from ..io.parquet import provenance, write_table


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fsl(x: np.ndarray, valid: np.ndarray) -> pa.Array:
    return embedding_array(x, valid, x.shape[1])


def planted(rng: np.random.Generator, signal: np.ndarray, dim: int, strength: float) -> np.ndarray:
    """Unit vectors whose first coordinate is ``strength * signal`` plus noise."""
    x = rng.normal(size=(len(signal), dim))
    x[:, 0] += strength * signal
    return _unit(x)


def instagram_features(results: str | Path, text_dim: int = 32, image_dim: int = 24, seed: int = 0,
                       strength: float = 3.0, comment_weight: float = 2.0) -> list[str]:
    """Sentiment, text and pooled image embeddings for every posts shard under ``results``.

    Signal: the log engagement rate of each post (standardised), planted in both embeddings.
    Nulls as the contract has them: no text embedding for an empty caption or an unparsed post, no
    pooled image for videos and unparsed posts. Returns the shard ids written.
    """
    results = Path(results)
    shards = sorted(results.glob("instagram/posts/shard-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{results}/instagram/posts: no shards; run ingest first")
    rng = np.random.default_rng(seed)
    written = []
    for path in shards:
        shard = path.stem.split("-")[1]
        posts = pl.read_parquet(path)
        parsed = posts["status"].is_in(sorted(S.PARSED)).to_numpy()
        y = (posts.select(((pl.col("likes") + comment_weight * pl.col("comments")).cast(pl.Float64).log1p()
                           - pl.col("followers").cast(pl.Float64).log1p()).fill_null(0.0)).to_series().to_numpy())
        z = (y - y[parsed].mean()) / (y[parsed].std() + 1e-9) if parsed.any() else y
        has_text = parsed & (posts["caption"].fill_null("").str.len_chars() > 0).to_numpy()
        has_image = parsed & ~posts["is_video"].fill_null(True).to_numpy()
        n = posts.height
        ids = posts["post_id"].to_arrow()
        status = posts["status"].to_arrow()
        pos = rng.random(n) < 0.5
        sent_label = np.where(pos, "POSITIVE", "NEGATIVE").astype(object)
        sent_label[~has_text] = None
        score = rng.uniform(0.5, 1.0, n).astype(np.float32)
        sentiment = pa.table({
            "post_id": ids, "caption_sentiment": pa.array(sent_label, pa.string()),
            "caption_score": pa.array(score, mask=~has_text), "caption_truncated": pa.array(np.zeros(n, bool)),
            "comment_sentiment": pa.array(sent_label, pa.string()), "comment_score": pa.array(score, mask=~has_text),
            "comment_truncated": pa.array(np.zeros(n, bool)), "status": status})
        prov = provenance("synthetic", None, generator="affectflow.train.synthetic", seed=seed)
        write_table(results / f"instagram/sentiment/shard-{shard}.parquet", sentiment, tables.SENTIMENT, prov)
        xt = planted(rng, z, text_dim, strength)
        write_table(results / f"instagram/text_embeddings/shard-{shard}.parquet", pa.table({
            "post_id": ids, "embedding": _fsl(xt, has_text), "truncated": pa.array(np.zeros(n, bool)), "status": status}),
            tables.text_embeddings(text_dim), prov)
        xi = planted(rng, z, image_dim, strength / 2)
        n_img = posts["image_files"].list.len().fill_null(0).to_numpy().astype(np.int16)
        write_table(results / f"instagram/image_pooled/shard-{shard}.parquet", pa.table({
            "post_id": ids, "embedding": _fsl(xi, has_image), "n_images": pa.array(n_img),
            "n_embedded": pa.array(np.where(has_image, n_img, 0).astype(np.int16)), "status": status}),
            tables.pooled_image_embeddings(image_dim), prov)
        written.append(shard)
    return written


def dreaddit_features(results: str | Path, dreaddit_dir: str | Path, shards: int = 2, dim: int = 16,
                      seed: int = 0, text_strength: float = 3.0, image_strength: float = 0.0) -> None:
    """The real Dreaddit posts table (``affectflow.dreaddit.posts.build_posts``: statuses, grouped val
    split) and CLIP shards with planted signal in place of the CLIP stage.

    The image embedding carries ``image_strength`` of the label (0 by default: an image made from
    the text alone, with nothing leaked); every 7th post has no usable image; posts whose text the
    Dreaddit stage does not trust get no vectors, as the CLIP stage does.
    """
    from .. import config as C
    from ..dreaddit.posts import build_posts

    results, dreaddit_dir = Path(results), Path(dreaddit_dir)
    cfg = C.validate({"results": str(results), "dreaddit": {
        "train": str(dreaddit_dir / "dreaddit-train.csv"), "test": str(dreaddit_dir / "dreaddit-test.csv"), "shards": shards}})
    posts_path = results / "dreaddit/posts/posts.parquet"
    build_posts(cfg, posts_path, results / "dreaddit/posts_summary.json")
    posts = pl.read_parquet(posts_path, columns=["post_id", "label", "status"])
    rng = np.random.default_rng(seed)
    sign = posts["label"].fill_null(0).to_numpy().astype(np.float64) * 2 - 1
    xt = planted(rng, sign, dim, text_strength)
    xi = planted(rng, sign, dim, image_strength)
    has_text = posts["status"].is_in(sorted(S.DREADDIT_HAS_TEXT)).to_numpy()
    has_image = has_text & (np.arange(posts.height) % 7 != 3)
    status = np.where(has_text, S.OK, posts["status"].to_numpy())
    prov = provenance("synthetic", None, generator="affectflow.train.synthetic", seed=seed)
    bounds = np.linspace(0, posts.height, shards + 1).astype(int)
    for k in range(shards):
        sl = slice(bounds[k], bounds[k + 1])
        n = bounds[k + 1] - bounds[k]
        write_table(results / f"dreaddit/clip/shard-{k:05d}.parquet", pa.table({
            "post_id": posts["post_id"].to_arrow()[sl], "text_embedding": _fsl(xt[sl], has_text[sl]),
            "image_embedding": _fsl(xi[sl], has_image[sl]), "text_tokens": pa.array(np.full(n, 20, np.int32)),
            "text_windows": pa.array(np.ones(n, np.int16)), "text_truncated": pa.array(np.zeros(n, bool)),
            "status": pa.array(status[sl].tolist(), pa.string())}), tables.dreaddit_clip(dim), prov)


def dreaddit_images(results: str | Path, size: int = 32, seed: int = 0, shards: int = 2) -> None:
    """Synthesis index + small PNGs for every post of ``{results}/dreaddit/posts/posts.parquet`` (contract
    paths; every 7th post gets a ``blocked``-style status and no image)."""
    from PIL import Image

    results = Path(results)
    posts = pl.read_parquet(results / "dreaddit/posts/posts.parquet", columns=["post_id"])
    rng = np.random.default_rng(seed)
    img_dir = results / "dreaddit/images"
    img_dir.mkdir(parents=True, exist_ok=True)
    paths, statuses = [], []
    for k, pid in enumerate(posts["post_id"].to_list()):
        if k % 7 == 3:
            paths.append(None)
            statuses.append("blocked")
            continue
        p = img_dir / f"{pid}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
        statuses.append(S.OK)
    n = posts.height
    bounds = np.linspace(0, n, shards + 1).astype(int)
    prov = provenance("synthetic", None, generator="affectflow.train.synthetic", seed=seed)
    for k in range(shards):
        sl = slice(bounds[k], bounds[k + 1])
        m = bounds[k + 1] - bounds[k]
        write_table(results / f"dreaddit/synth/shard-{k:05d}.parquet", pa.table({
            "post_id": posts["post_id"].to_arrow()[sl], "image_path": pa.array(paths[sl], pa.string()),
            "prompt": pa.array(["a photo"] * m), "prompt_truncated": pa.array(np.zeros(m, bool)),
            "seed": pa.array(np.arange(m, dtype=np.int64)),
            "model": pa.array(["synthetic"] * m), "status": pa.array(statuses[sl]),
            "error": pa.nulls(m, pa.string())}), tables.DREADDIT_SYNTH, prov)



def split_folders(out: str | Path, task: str, rows: dict[str, int], dims: dict[str, int] | None = None,
                  seed: int = 0, strength: dict[str, float] | None = None, missing: float = 0.1) -> dict[str, Path]:
    """Split folders written directly (no feature tables): ``rows`` per split, planted signal.

    For tests and benchmarks of the trainer at any size. ``strength`` per modality (0: no signal);
    a ``missing`` fraction of each optional modality is absent. Groups are disjoint across splits.
    """
    from .arrays import Modality, SplitWriter

    if task == "engagement":
        dims = dims or {"text": 32, "image": 24, "metadata": 8}
        strength = strength or {"text": 2.0, "image": 1.0, "metadata": 0.5}
    else:
        dims = dims or {"text": 32, "image": 32}
        strength = strength or {"text": 2.0, "image": 0.0}
    rng = np.random.default_rng(seed)
    mods = [Modality(m, d, "float32" if m == "metadata" else "float16") for m, d in dims.items()]
    folders = {}
    for split, n in rows.items():
        if task == "engagement":
            z = rng.normal(size=n)
            y = (z * 0.8 - 3.5).astype(np.float32)
        else:
            y = rng.integers(0, 2, n)
            z = y * 2.0 - 1
        x, mask = {}, {}
        for m, d in dims.items():
            x[m] = planted(rng, z, d, strength.get(m, 0.0)) if m != "metadata" else (
                rng.normal(size=(n, d)) + np.outer(strength.get(m, 0.0) * z, np.eye(d)[0])).astype(np.float32)
            mask[m] = np.ones(n, bool) if m in ("metadata",) or (m == "text" and task == "stress") else rng.random(n) >= missing
            x[m][~mask[m]] = 0
        groups = [f"{split}-g{i % max(1, n // 10)}" for i in range(n)]
        cats = [("fashion", "food", "travel")[i % 3] for i in range(n)]
        table = pa.table({"post_id": [f"{split}-{i}" for i in range(n)], "split": [split] * n, "group": groups,
                          "category": cats, "target": pa.array(np.asarray(y, np.float32))})
        w = SplitWriter(Path(out) / split, split, n, mods, "float32" if task == "engagement" else "int64", task,
                        provenance("synthetic", None))
        w.write(x, mask, y, table)
        w.close()
        folders[split] = Path(out) / split
    return folders


def ingest_sample(sample_dir: str | Path, results: str | Path, shards: int = 3) -> list[Path]:
    """The real ingestion (plan, every shard, summary) of a sample into ``results``, without Snakemake."""
    from .. import config as C
    from ..instagram.ingest import ingest_shard, summarize
    from ..instagram.plan import plan

    results = Path(results)
    cfg = C.validate({"results": str(results), "instagram": {"root": str(Path(sample_dir) / "instagram"), "shards": shards}})
    plan_dir = results / "instagram/plan"
    plan(cfg, plan_dir / "posts.parquet", plan_dir / "images.parquet", plan_dir / "plan.json")
    out = [results / f"instagram/posts/shard-{k:05d}.parquet" for k in range(shards)]
    for k, p in enumerate(out):
        ingest_shard(cfg, plan_dir / "posts.parquet", plan_dir / "plan.json", k, p)
    summarize(plan_dir / "plan.json", out, results / "instagram/ingest_summary.json")
    return out
