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
from ..inference.device import autocast, dtype_name, prepare_model, to_device
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
    """The open_clip model of ``models.clip``, from disk only, ready for inference.

    Args:
        cfg: config with ``models.clip``.
        device: the ``torch.device`` it runs on.
        dtype: the ``torch.dtype`` it runs in.

    Returns:
        ``(model, Preprocess, dim, provenance)``: the model in eval mode, its input size and
        normalisation, its embedding width, and its provenance (``key``, ``arch``, ``pretrained``,
        ``path``, ``digest``, ``model_name``, ``device``, ``dtype``).

    Raises:
        ModelMissing: the weights (or the model folder's config) are not on disk.
    """
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
    """The model on pixels: normalised on the device, encoded under autocast.

    Args:
        net: the open_clip model (:func:`load_image_model`).
        pre: its preprocessing (mean and std per channel, on the 0-1 scale).
        dim: its embedding width.
        device: the model's ``torch.device``.
        dtype: the model's ``torch.dtype``.

    Returns:
        An :class:`ImageEncoder`: called with a ``(n, H, W, 3)`` uint8 tensor it returns a
        ``(n, dim)`` float32 numpy array, each row L2-normalised (``(0, dim)`` for an empty batch).
    """
    return ImageEncoder(net, pre, dim, device, dtype)


def image_reader(zf: MultiVolumeZip, todo: pl.DataFrame, pre: Preprocess, icfg, max_member_bytes: int, workers: int,
                 pin: bool, decode_on=None):
    """The stage's reader: DataLoader batches of ``todo``'s images read from the volumes.

    Args:
        zf: the open image archive.
        todo: the images to embed, in archive order, with the zip-location columns.
        pre: the model's preprocessing (input size, resize rule).
        icfg: ``features.image_embedding`` (batch size, prefetch, draft, max pixels).
        max_member_bytes: the largest member read (``instagram.max_member_bytes``).
        workers: reading processes (0: in this process).
        pin: pin the batches' memory (GPU).
        decode_on: None: the workers decode (:class:`image_decode.ImageBatches`); a CUDA device:
            the workers only read the bytes of the JPEGs it can decode (:class:`image_device.ByteBatches`).

    Returns:
        An iterable of batch dicts (:mod:`image_decode`): ``pixels`` ``(n, H, W, 3)`` uint8 of the
        decoded images, ``rows`` (positions in ``todo``), ``decoded`` and per image ``status``,
        ``error``, ``format``, ``mode``, ``width``, ``height`` (plus the JPEG bytes for the device).
    """
    members = {k: todo[k].to_list() for k in MEMBER_COLUMNS}
    batches = ImageBatches if decode_on is None else ByteBatches
    dataset = batches(zf, members, pre, icfg.draft, icfg.max_pixels, max_member_bytes)
    return loader(dataset, icfg.batch_size, workers, icfg.prefetch_factor, pin)


class ImageMapper:
    """The stage's mapper: a batch -> ``(decoded, dim)`` float32 L2-normalised embeddings.

    With ``decode_on`` None the batch's ``pixels`` are encoded; with a CUDA device its JPEGs are
    decoded there first (:class:`image_device.DeviceDecoder`; the CPU decoder takes what it cannot).

    Args:
        encode: the model (:func:`image_encoder`).
        pre: the model's preprocessing.
        icfg: ``features.image_embedding`` (draft, max pixels).
        decode_on: None, or the CUDA device that decodes JPEGs (:func:`image_device.resolve_decode`).
    """

    def __init__(self, encode: ImageEncoder, pre: Preprocess, icfg, decode_on=None):
        self.encode = encode
        self.on_device = None if decode_on is None else DeviceDecoder(pre, decode_on, icfg.draft, icfg.max_pixels)

    def __call__(self, batch: dict) -> np.ndarray:
        if self.on_device is None:
            return self.encode(batch["pixels"])
        return self.encode.encode(self.on_device(batch))

    @property
    def fallbacks(self) -> int:
        """Images the device decoder handed to the CPU decoder (0 when decoding on the CPU)."""
        return 0 if self.on_device is None else self.on_device.fallbacks


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


def unembedded_rows(skipped: pl.DataFrame, missing: pl.DataFrame, dim: int, zip_name: str) -> list[pa.Table]:
    """Image rows without an embedding: images of posts that were not parsed (the post's status)
    and images mapped but absent from the archive (``missing``, or the post's status)."""
    not_parsed = pl.format("post not parsed ({}): image not embedded", pl.col("post_status"))
    post_ok = parsed(pl.col("post_status"))
    return [
        _passthrough_rows(skipped, dim, pl.col("post_status"), not_parsed),
        _passthrough_rows(missing, dim, pl.when(post_ok).then(pl.lit(S.MISSING)).otherwise(pl.col("post_status")),
                          pl.when(post_ok).then(pl.format("{}-{}: mapped, but not in {}", pl.col("username"),
                                                          pl.col("image_file"), pl.lit(zip_name)))
                          .otherwise(not_parsed)),
    ]


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
    """Per post: the mean of its embedded images, re-normalised; null (``no_image``) when none.

    Args:
        posts: the shard's posts (``post_id``, ``status``, ``image_files``, ``missing_images``), in order.
        sums: ``(n_posts, dim)`` float32, the sum of each post's image embeddings.
        counts: ``(n_posts,)`` int, the images embedded per post.
        dim: the embedding width.

    Returns:
        Rows of :func:`tables.pooled_image_embeddings`: ``post_id``, ``embedding`` (``dim`` float32,
        L2-normalised, null without an embedded image), ``n_images`` (mapped), ``n_embedded``,
        ``status`` (the post's when not parsed, else ``ok`` or ``no_image``).
    """
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
    """Stage ``image_embeddings``: embed one shard's images into ``out``, its per-post means into ``pooled_out``.

    Reader (:func:`image_reader`), mapper (:class:`ImageMapper`) and writer (:class:`EmbeddingRowWriter`)
    built from the config, driven by :func:`inference.runner.run`; the images that are not
    embedded (:func:`unembedded_rows`) and the pooled table (:func:`pooled_table`) follow.

    Args:
        cfg: config with ``features`` (device, precision, ``image_embedding``), ``instagram``
            (``images_zip``, ``max_member_bytes``) and ``models.clip``.
        posts_path: the posts shard (``post_id``, ``status``, ``username``, ``image_files``, ``missing_images``).
        plan_images: the plan's ``images.parquet`` (zip locations, archive order).
        shard: the shard number.
        out: one row per mapped image (:func:`tables.image_embeddings`).
        pooled_out: one row per post (:func:`tables.pooled_image_embeddings`).
        threads: the job's cores (default ``features.image_embedding.threads``).

    Returns:
        ``{"images", "posts", "by_status", "dim", "workers", "decode", "device_fallbacks"}`` and the run's timings (:meth:`RunStats.as_dict`).

    Raises:
        ModelMissing: ``models.clip`` is not on disk.
        DeviceMissing: ``features.device`` names CUDA and no GPU is visible.
        ValueError: ``decode: gpu`` without a CUDA device.
        RuntimeError: the plan names posts the posts shard lacks (they are from different runs).
    """
    fcfg = FeaturesConfig.from_config(cfg)
    icfg = fcfg.image_embedding
    ig = InstagramConfig.from_config(cfg)
    threads = threads or icfg.threads
    where = fcfg.placement(threads)
    device, dtype = where.device, where.dtype
    net, pre, dim, model_prov = load_image_model(cfg, device, dtype)
    posts = read_posts_shard(posts_path, ["username", "image_files", "missing_images"]).with_row_index("post_row")
    present, missing = _shard_images(posts, plan_images, shard)
    todo = present.filter(parsed(pl.col("post_status")))
    skipped = present.filter(~parsed(pl.col("post_status")))
    decode_on = resolve_decode(icfg.decode, device)
    workers = icfg.n_workers(threads, device.type)
    zf = MultiVolumeZip(ig.images_zip)
    prov = provenance("instagram_image_embeddings", cfg, shard=shard, source=str(posts_path),
                      sources=[str(p) for p in zf.volumes], model=model_prov | {"dim": dim, "input": list(pre.size)},
                      device=str(device), dtype=where.dtype_name, draft=icfg.draft, workers=workers,
                      decode="cpu" if decode_on is None else str(decode_on))
    log.info("shard %d: %d images to embed, %d of unparsed posts, %d missing; %d %s workers, batch %d, JPEG decode on %s",
             shard, todo.height, skipped.height, missing.height, workers,
             "decode" if decode_on is None else "read", icfg.batch_size, decode_on or "cpu")

    reader = image_reader(zf, todo, pre, icfg, ig.max_member_bytes, workers, icfg.pin_memory and where.cuda, decode_on)
    mapper = ImageMapper(image_encoder(net, pre, dim, device, dtype), pre, icfg, decode_on)
    with zf, ParquetWriter(out, image_embeddings(dim), prov) as pw:
        writer = EmbeddingRowWriter(pw, todo, posts.height, dim)
        stats = run(reader, mapper, writer, size=lambda b: len(b["status"]), name=f"image_embeddings shard {shard}",
                    log_every=20, total=todo.height, unit="images")
        by_status = dict(writer.by_status)
        for table in unembedded_rows(skipped, missing, dim, ig.images_zip.name):
            pw.write(table)
            for s in table["status"].to_pylist():
                by_status[s] = by_status.get(s, 0) + 1
    with ParquetWriter(pooled_out, pooled_image_embeddings(dim), prov | {"table": "instagram_image_pooled"}) as w:
        w.write(pooled_table(posts, writer.sums, writer.counts, dim))
    log.info("image embeddings: shard %d, %d image rows, %d posts; %s", shard, sum(by_status.values()), posts.height,
             by_status)
    return {"images": sum(by_status.values()), "posts": posts.height, "by_status": by_status, "dim": dim,
            "workers": workers, "decode": "cpu" if decode_on is None else str(decode_on),
            "device_fallbacks": mapper.fallbacks, **stats.as_dict()}
