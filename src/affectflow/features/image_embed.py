"""CLIP embeddings of every mapped image of every post of a shard, and one pooled vector per post.

Outputs (join to the posts table on ``post_id``):

* ``image_embeddings`` (:func:`tables.image_embeddings`): one row per mapped image, present in the
  archive or not, with its embedding (null when missing or unreadable), ``status``, ``error``, and
  what the bytes were (format, mode, size);
* ``image_pooled`` (:func:`tables.pooled_image_embeddings`): one row per post, the mean of its
  embedded images re-normalised, null with status ``no_image`` when it has none.

Images are read in the plan's archive order (sequential reads of the volumes) by DataLoader
workers, which decode them (:mod:`image_decode`) or, with ``decode: gpu``, only read their bytes
for nvJPEG on the device (:mod:`image_device`); the model runs on the device in half precision; the runner logs
read / inference / write time per batch, so a starved GPU shows as a read-bound stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa

from .. import status as S
from ..inference.device import autocast, dtype_name, prepare_model, setup_torch, to_device
from ..inference.runner import run
from ..instagram.config import InstagramConfig
from ..instagram.plan import read_plan_shard
from ..io.arrays import embedding_array
from ..io.multizip import MultiVolumeZip
from ..io.parquet import ParquetWriter, provenance
from ..models import ClipModel, clip_dim, load_clip
from ..tables import MEMBER_COLUMNS, image_embeddings, pooled_image_embeddings
from .common import parsed, read_posts_shard
from .config import FeaturesConfig
from .image_decode import ImageBatches, Preprocess, loader
from .image_device import ByteBatches, DeviceDecoder, resolve_decode

log = logging.getLogger(__name__)


def load_image_model(cfg: Mapping[str, Any], device, dtype):
    """``(open_clip model, Preprocess, embedding dim, provenance)``, from disk only."""
    net, _, _, prov = load_clip(cfg, ClipModel.from_config(cfg), device="cpu")
    net = prepare_model(net, device, dtype)
    dim = clip_dim(net)
    return net, Preprocess.from_open_clip(net), dim, prov | {"device": str(device), "dtype": dtype_name(dtype)}


class ImageEncoder:
    """Model-sized pixels -> L2-normalised float32 embeddings (numpy ``(N, dim)``).

    Call with NHWC uint8 host pixels (the CPU decoder's batches); :meth:`encode` takes NCHW
    float 0..255 pixels already on the device (the device decoder's).
    """

    def __init__(self, net, pre: Preprocess, dim: int, device, dtype):
        import torch

        self.net, self.dim, self.device, self.dtype = net, dim, device, dtype
        self.mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1) * 255

    def encode(self, x) -> np.ndarray:
        import torch

        if x.shape[0] == 0:  # a batch with no readable image
            return np.zeros((0, self.dim), np.float32)
        x = ((x - self.mean) / self.std).to(self.dtype)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            emb = self.net.encode_image(x)
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    def __call__(self, pixels) -> np.ndarray:
        if pixels.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.encode(to_device(pixels, self.device).permute(0, 3, 1, 2).float())


def image_encoder(net, pre: Preprocess, dim: int, device, dtype) -> ImageEncoder:
    """Batch of NHWC uint8 pixels -> L2-normalised float32 embeddings (numpy)."""
    return ImageEncoder(net, pre, dim, device, dtype)


def _shard_images(posts: pl.DataFrame, plan_images: str | Path, shard: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(present, missing)``: the shard's images in the archive (plan order) and those mapped but
    absent, each with ``post_row``, the post's status and ``image_index`` (position in the mapping)."""
    cols = ["post_id", "image_index", "image_file", *MEMBER_COLUMNS]
    present = pl.from_arrow(read_plan_shard(plan_images, shard, cols))
    keyed = posts.select("post_id", "post_row", pl.col("status").alias("post_status"))
    present = present.join(keyed, on="post_id", how="left", maintain_order="left")
    stray = present.filter(pl.col("post_row").is_null())
    if stray.height:
        raise RuntimeError(f"{plan_images}: {stray.height} images of shard {shard} name posts the posts shard lacks "
                           f"(e.g. {stray['post_id'][0]}): the plan and the posts shard are from different runs")
    # a missing image's index: the positions the present ones leave free, in mapping order
    n = posts.select("post_id", (pl.col("image_files").list.len() + pl.col("missing_images").list.len()).alias("n"))
    free = (n.filter(pl.col("n") > 0).select("post_id", pl.int_ranges(0, "n").alias("image_index")).explode("image_index")
            .with_columns(pl.col("image_index").cast(pl.Int16))
            .join(present.select("post_id", "image_index"), on=["post_id", "image_index"], how="anti")
            .sort("post_id", "image_index")
            .with_columns(pl.int_range(pl.len()).over("post_id").alias("k")))
    missing = (posts.select("post_id", "username", "post_row", pl.col("status").alias("post_status"),
                            pl.col("missing_images").alias("image_file"))
               .explode("image_file").filter(pl.col("image_file").is_not_null())
               .with_columns(pl.int_range(pl.len()).over("post_id").alias("k"))
               .join(free, on=["post_id", "k"], how="left").drop("k"))
    return present, missing


def _passthrough_rows(df: pl.DataFrame, dim: int, status: pl.Expr, error: pl.Expr) -> pa.Table:
    """Image rows without an embedding (missing images, images of posts that were not parsed)."""
    out = df.select("post_id", "image_file", pl.col("image_index").cast(pl.Int16), status.alias("status"),
                    error.alias("error"))
    t = out.to_arrow()
    n = t.num_rows
    return pa.table({
        "post_id": t["post_id"], "image_file": t["image_file"], "image_index": t["image_index"],
        "embedding": embedding_array(None, np.zeros(n, bool), dim), "status": t["status"], "error": t["error"],
        "format": pa.nulls(n, pa.string()), "mode": pa.nulls(n, pa.string()),
        "width": pa.nulls(n, pa.int32()), "height": pa.nulls(n, pa.int32()),
    })


class EmbeddingRowWriter:
    """Appends each decoded batch's rows to the image table and adds its vectors to the per-post sums."""

    def __init__(self, writer: ParquetWriter, images: pl.DataFrame, n_posts: int, dim: int):
        self.writer = writer
        self.dim = dim
        self.post_id = images["post_id"].to_numpy()
        self.image_file = images["image_file"].to_numpy()
        self.image_index = images["image_index"].to_numpy()
        self.post_row = images["post_row"].to_numpy().astype(np.int64)
        self.sums = np.zeros((n_posts, dim), np.float32)  # a few unit vectors per post: float32 is plenty
        self.counts = np.zeros(n_posts, np.int64)
        self.by_status: dict[str, int] = {}

    def write(self, batch: dict, emb: np.ndarray) -> None:
        rows = batch["rows"].numpy()
        decoded = batch["decoded"].numpy()
        valid = np.zeros(len(rows), bool)
        valid[decoded] = True
        full = np.zeros((len(rows), self.dim), np.float32)
        if len(decoded):
            full[decoded] = emb
            owners = self.post_row[rows[decoded]]
            np.add.at(self.sums, owners, emb)
            np.add.at(self.counts, owners, 1)
        for s in batch["status"]:
            self.by_status[s] = self.by_status.get(s, 0) + 1
        self.writer.write(pa.table({
            "post_id": pa.array(self.post_id[rows], pa.string()),
            "image_file": pa.array(self.image_file[rows], pa.string()),
            "image_index": pa.array(self.image_index[rows], pa.int16()),
            "embedding": embedding_array(full, valid, self.dim),
            "status": pa.array(batch["status"], pa.string()),
            "error": pa.array(batch["error"], pa.string()),
            "format": pa.array(batch["format"], pa.string()),
            "mode": pa.array(batch["mode"], pa.string()),
            "width": pa.array(batch["width"], pa.int32()),
            "height": pa.array(batch["height"], pa.int32()),
        }))


def pooled_table(posts: pl.DataFrame, sums: np.ndarray, counts: np.ndarray, dim: int) -> pa.Table:
    """Per post: the mean of its embedded images, re-normalised; null (``no_image``) when none."""
    has = counts > 0
    mean = np.zeros_like(sums, dtype=np.float32)
    if has.any():
        m = sums[has] / counts[has, None]
        mean[has] = (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    n_images = posts.select(pl.col("image_files").list.len() + pl.col("missing_images").list.len())
    status = posts.select(pl.when(~parsed()).then(pl.col("status"))
                          .when(pl.Series(has)).then(pl.lit(S.OK)).otherwise(pl.lit(S.NO_IMAGE)))
    return pa.table({
        "post_id": posts["post_id"].to_arrow(),
        "embedding": embedding_array(mean, has, dim),
        "n_images": pa.array(n_images.to_series().to_numpy(), pa.int16()),
        "n_embedded": pa.array(counts, pa.int16()),
        "status": status.to_series().to_arrow(),
    })


def image_embeddings_shard(cfg: Mapping[str, Any], posts_path: str | Path, plan_images: str | Path, shard: int,
                           out: str | Path, pooled_out: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Embed one shard's images into ``out`` and its per-post means into ``pooled_out``."""
    fcfg = FeaturesConfig.from_config(cfg)
    icfg = fcfg.image_embedding
    ig = InstagramConfig.from_config(cfg)
    threads = threads or icfg.threads
    device, dtype = setup_torch(fcfg, threads)
    net, pre, dim, model_prov = load_image_model(cfg, device, dtype)
    posts = read_posts_shard(posts_path, ["username", "image_files", "missing_images"]).with_row_index("post_row")
    present, missing = _shard_images(posts, plan_images, shard)
    todo = present.filter(parsed(pl.col("post_status")))
    skipped = present.filter(~parsed(pl.col("post_status")))
    decode_on = resolve_decode(icfg.decode, device)
    workers = icfg.n_workers(threads, device.type)
    pin = icfg.pin_memory and device.type == "cuda"
    zf = MultiVolumeZip(ig.images_zip)
    prov = provenance("instagram_image_embeddings", cfg, shard=shard, source=str(posts_path),
                      sources=[str(p) for p in zf.volumes], model=model_prov | {"dim": dim, "input": list(pre.size)},
                      device=str(device), dtype=dtype_name(dtype), draft=icfg.draft, workers=workers,
                      decode="cpu" if decode_on is None else str(decode_on))
    log.info("shard %d: %d images to embed, %d of unparsed posts, %d missing; %d %s workers, batch %d, JPEG decode on %s",
             shard, todo.height, skipped.height, missing.height, workers,
             "decode" if decode_on is None else "read", icfg.batch_size, decode_on or "cpu")
    members = {k: todo[k].to_list() for k in MEMBER_COLUMNS}
    encode = image_encoder(net, pre, dim, device, dtype)
    if decode_on is None:
        dataset = ImageBatches(zf, members, pre, icfg.draft, icfg.max_pixels, ig.max_member_bytes)
        mapper = lambda b: encode(b["pixels"])  # noqa: E731
    else:  # workers read bytes; the device decodes (CPU decoder for what it cannot take)
        dataset = ByteBatches(zf, members, pre, icfg.draft, icfg.max_pixels, ig.max_member_bytes)
        on_device = DeviceDecoder(pre, decode_on, icfg.draft, icfg.max_pixels)
        mapper = lambda b: encode.encode(on_device(b))  # noqa: E731
    with zf, ParquetWriter(out, image_embeddings(dim), prov) as writer:
        sink = EmbeddingRowWriter(writer, todo, posts.height, dim)
        stats = run(loader(dataset, icfg.batch_size, workers, icfg.prefetch_factor, pin), mapper, sink,
                    size=lambda b: len(b["status"]), name=f"image_embeddings shard {shard}",
                    log_every=20, total=todo.height, unit="images")
        not_parsed = pl.format("post not parsed ({}): image not embedded", pl.col("post_status"))
        post_ok = parsed(pl.col("post_status"))
        rest = [
            _passthrough_rows(skipped, dim, pl.col("post_status"), not_parsed),
            _passthrough_rows(missing, dim, pl.when(post_ok).then(pl.lit(S.MISSING)).otherwise(pl.col("post_status")),
                              pl.when(post_ok).then(pl.format("{}-{}: mapped, but not in {}", pl.col("username"),
                                                              pl.col("image_file"), pl.lit(ig.images_zip.name)))
                              .otherwise(not_parsed)),
        ]
        by_status = dict(sink.by_status)
        for table in rest:
            writer.write(table)
            for s in table["status"].to_pylist():
                by_status[s] = by_status.get(s, 0) + 1
    pooled = pooled_table(posts, sink.sums, sink.counts, dim)
    with ParquetWriter(pooled_out, pooled_image_embeddings(dim), prov | {"table": "instagram_image_pooled"}) as w:
        w.write(pooled)
    log.info("image embeddings: shard %d, %d image rows, %d posts; %s", shard, sum(by_status.values()), posts.height,
             by_status)
    return {"images": sum(by_status.values()), "posts": posts.height, "by_status": by_status, "dim": dim,
            "workers": workers, "decode": "cpu" if decode_on is None else str(decode_on),
            "device_fallbacks": 0 if decode_on is None else on_device.fallbacks, **stats.as_dict()}
