"""Synthesize one image per Dreaddit post, one shard per job, resumable within the shard.

* **Model**: a diffusers text-to-image pipeline named by ``models.diffusion`` (hub id fetched by
  ``fetch_models``, or a local folder), loaded offline with ``AutoPipelineForText2Image``.
* **Prompt**: the post text in the configured template, fitted to the encoder's window
  (:mod:`dreaddit_prompt`); nothing else from the row reaches the pipeline.
* **Seed**: ``sha256(global seed, post_id)``; each image draws its noise from its own CPU
  generator, so it is the same whether made alone or in any batch, on any device (up to the
  device's arithmetic; on CPU batch composition changes pixels by well under one level).
* **Resume**: images are PNGs named by post_id under ``{results}/dreaddit/images/``, written
  atomically, each carrying its *recipe* (model digest, prompt, seed, steps, guidance, size,
  precision, safety checker) in a PNG text chunk. A rerun keeps an image only when it decodes
  completely, has the configured size and the same recipe, and makes the others. Images are not
  Snakemake outputs (a failed job would delete them); the shard's index Parquet is.
* **Safety checker**: an explicit config choice; a flagged image gets status ``blocked`` and is
  not written.
* **GPU**: fp16 by default, UNet in channels-last, attention slicing only on small GPUs, optional
  ``torch.compile``; a CUDA out-of-memory error halves the batch instead of failing the shard;
  PNG encoding runs in threads while the next batch is on the device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .. import config as C
from .. import status as S
from ..inference.device import Placement, place
from ..inference.runner import run
from ..io.parquet import provenance, write_table
from ..layout import params as rule_params
from ..models import HFModel, ModelMissing, check_tokenizer_complete, provenance_of, resolve
from ..tables import DREADDIT_SYNTH
from .config import DreadditConfig, SynthesisConfig, validated
from .posts import read_dreaddit_shard, stable_hash
from .prompt import PromptFitter, check_negative_prompt, check_template

log = logging.getLogger(__name__)

RECIPE_KEY = "affectflow-recipe"
SMALL_GPU_BYTES = 16 * 2**30  # attention slicing pays only below this much GPU memory


def post_seed(global_seed: int, post_id: str) -> int:
    """The post's seed: stable across processes and machines (never Python's salted ``hash``).

    Returns:
        ``stable_hash("synthesize", global_seed, post_id)``, a non-negative 63-bit int.
    """
    return stable_hash("synthesize", global_seed, post_id)


def image_name(post_id: str) -> str:
    """``<post_id>.png``; post ids are ``dreaddit-<id>`` or ``dreaddit-<split>-line<N>``, safe as names.

    Raises:
        ValueError: the id holds a ``/`` or starts with a dot.
    """
    if "/" in post_id or post_id.startswith("."):
        raise ValueError(f"post_id {post_id!r} is not usable as a file name")
    return f"{post_id}.png"


@dataclass(frozen=True)
class Job:
    """One image to make: the post, its fitted prompt, its seed, its PNG path and its recipe."""

    post_id: str
    prompt: str
    seed: int
    path: Path
    recipe: str


def recipe_of(model_digest: str, prompt: str, seed: int, syn: SynthesisConfig, precision: str) -> str:
    """What makes an image what it is; an image with another recipe is remade, not kept.

    Returns:
        32 hex digits of the sha256 of the model digest, prompt, negative prompt, seed, steps,
        guidance, size, precision (``fp32``/``fp16``/``bf16``) and safety-checker choice.
    """
    spec = {"model": model_digest, "prompt": prompt, "negative": syn.negative_prompt, "seed": seed,
            "steps": syn.steps, "guidance": syn.guidance, "width": syn.width, "height": syn.height,
            "precision": precision, "safety_checker": syn.safety_checker}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def valid_image(path: Path, width: int, height: int, recipe: str) -> bool:
    """An existing image is kept only if it decodes fully, has the size and was made by ``recipe``.

    Returns:
        True for a complete PNG of ``width`` x ``height`` pixels whose recipe chunk is ``recipe``;
        False otherwise (unreadable, truncated, another size or recipe), never an exception.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "PNG" or im.size != (width, height) or im.text.get(RECIPE_KEY) != recipe:
                return False
            im.load()  # a truncated file fails here, not at verify()
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def save_png(path: Path, pixels: np.ndarray, job: Job, model: str, level: int) -> None:
    """Write atomically: a killed job never leaves a half-written image under the final name.

    Args:
        path: the PNG's final path.
        pixels: ``(height, width, 3)`` uint8 RGB.
        job: the job (its recipe, prompt and seed go into PNG text chunks).
        model: ``models.diffusion.id`` (a text chunk).
        level: zlib compression level 0-9.

    Raises:
        OSError: the file cannot be written (the temporary is removed).
    """
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, job.recipe)
    info.add_itxt("prompt", job.prompt)
    info.add_text("seed", str(job.seed))
    info.add_text("model", model)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info, compress_level=level)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- the pipeline ----------------------------------------------------------------------------------
def synthesis_placement(device: str, precision: str, threads: int | None = None) -> Placement:
    """Synthesis's precision rule for :func:`inference.device.place`: fp16 on a GPU unless told
    otherwise (Stable Diffusion weights are published for it), always fp32 on a CPU.

    Args:
        device: ``dreaddit.synthesis.device`` (auto | cpu | cuda | cuda:N).
        precision: ``dreaddit.synthesis.precision`` (auto | fp16 | bf16 | fp32).
        threads: the job's cores, or None to leave torch's pool alone.

    Returns:
        The :class:`~affectflow.inference.device.Placement`; its ``precision`` goes into each image's recipe.

    Raises:
        DeviceMissing: ``dreaddit.synthesis.device`` names CUDA and no GPU is visible.
    """
    return place(device, precision, threads=threads, gpu_auto="fp16", cpu_half="never",
                 what="dreaddit.synthesis.device")


def _model_index(path: Path) -> dict:
    f = path / "model_index.json"
    if not f.is_file():
        raise ModelMissing(f"models.diffusion: {path} has no model_index.json: not a diffusers pipeline folder")
    return json.loads(f.read_text())


def _safety_components(cfg: Mapping, path: Path, index: dict, dtype) -> dict[str, Any]:
    """Keyword arguments that switch the checker on or off, as the config says, never by default."""
    has_slot = "safety_checker" in index
    ships_one = has_slot and index["safety_checker"][0] is not None
    if not cfg["dreaddit"]["synthesis"]["safety_checker"]:
        return {"safety_checker": None, "requires_safety_checker": False} if has_slot else {}
    if not has_slot:
        raise C.ConfigError(f"dreaddit.synthesis.safety_checker is true but {index.get('_class_name')} has no "
                            "safety checker slot; set it to false for this pipeline")
    if ships_one:
        return {}
    if "safety_checker" not in cfg["models"]:
        raise C.ConfigError(f"dreaddit.synthesis.safety_checker is true but {path} ships no checker: name one "
                            "in models.safety_checker (e.g. CompVis/stable-diffusion-safety-checker) and fetch it")
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    sc_path = resolve(cfg, HFModel.from_config(cfg, "safety_checker"))
    return {"safety_checker": StableDiffusionSafetyChecker.from_pretrained(sc_path, dtype=dtype),
            "feature_extractor": CLIPImageProcessor.from_pretrained(sc_path)}


def load_tokenizer(path: Path):
    """The pipeline's (first) tokenizer alone: prompts and recipes are known before the UNet loads.

    Raises:
        ModelMissing: the tokenizer is near-empty (an incomplete model folder).
        OSError: the folder has no ``tokenizer/``.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
    check_tokenizer_complete(tok, f"models.diffusion ({path}/tokenizer)")
    return tok


def load_pipeline(cfg: Mapping, path: Path, device, dtype):
    """The pipeline on ``device`` in ``dtype``, safety checker as configured, tuned for the device.

    Args:
        cfg: config with ``dreaddit.synthesis`` and ``models`` (the checker's, when named).
        path: the pipeline folder (:func:`models.resolve`).
        device: the ``torch.device``.
        dtype: the ``torch.dtype`` (from :func:`synthesis_placement`).

    Returns:
        A diffusers text-to-image pipeline (progress bars off; on CUDA: channels-last UNet,
        attention slicing on small GPUs or when asked, ``torch.compile`` when asked).

    Raises:
        ModelMissing: the folder has no ``model_index.json``.
        ConfigError: the safety checker is asked for and the pipeline has no slot, or ships none
            and ``models.safety_checker`` is not named.
    """
    import diffusers
    import torch
    import transformers
    from diffusers import AutoPipelineForText2Image

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    syn = cfg["dreaddit"]["synthesis"]
    index = _model_index(path)
    extra = _safety_components(cfg, path, index, dtype)
    pipe = AutoPipelineForText2Image.from_pretrained(path, dtype=dtype, **extra)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        slicing = syn["attention_slicing"] == "on" or (syn["attention_slicing"] == "auto" and total < SMALL_GPU_BYTES)
        if slicing:
            pipe.enable_attention_slicing()
        pipe.unet.to(memory_format=torch.channels_last)
        if syn["compile"]:  # default mode: no CUDA graphs, so the smaller last batch costs one recompile only
            pipe.unet = torch.compile(pipe.unet, fullgraph=True)
    elif syn["attention_slicing"] == "on":
        pipe.enable_attention_slicing()
    return pipe


class Generator:
    """The mapper: a batch of jobs -> per job (uint8 HxWx3 pixels | None, status, error)."""

    def __init__(self, pipe, syn: SynthesisConfig):
        self.pipe, self.syn = pipe, syn
        self.oom_splits = 0

    def __call__(self, jobs: list[Job]) -> list[tuple[np.ndarray | None, str, str | None]]:
        import torch

        try:
            return self._generate(jobs)
        except torch.cuda.OutOfMemoryError:
            if len(jobs) == 1:
                raise
            torch.cuda.empty_cache()
            self.oom_splits += 1
            half = len(jobs) // 2
            log.warning("CUDA out of memory at batch %d: retrying as %d + %d", len(jobs), half, len(jobs) - half)
            return self(jobs[:half]) + self(jobs[half:])

    def _generate(self, jobs: list[Job]):
        import torch

        syn = self.syn
        generators = [torch.Generator("cpu").manual_seed(j.seed) for j in jobs]
        kwargs = {}
        if syn.negative_prompt and syn.guidance > 1:
            kwargs["negative_prompt"] = [syn.negative_prompt] * len(jobs)
        with torch.inference_mode():
            out = self.pipe(prompt=[j.prompt for j in jobs], num_inference_steps=syn.steps, guidance_scale=syn.guidance,
                            height=syn.height, width=syn.width, generator=generators, output_type="np", **kwargs)
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(jobs)
        results = []
        for img, bad in zip(out.images, flagged):
            if bad:
                results.append((None, S.BLOCKED, "the safety checker flagged the image; none was kept"))
            elif not np.isfinite(img).all():
                results.append((None, S.SYNTH_FAILED, "the pipeline returned non-finite pixels (try precision fp32 or bf16)"))
            else:
                results.append(((np.clip(img, 0, 1) * 255).round().astype(np.uint8), S.OK, None))
        return results


class PngWriter:
    """The writer: PNGs encoded in threads while the next batch is generated; statuses collected."""

    def __init__(self, model: str, level: int, threads: int):
        self.model, self.level = model, level
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="png")
        self.pending: list[tuple[Job, Future]] = []
        self.results: dict[str, tuple[str, str | None]] = {}
        self.max_pending = threads * 8

    def write(self, jobs: list[Job], outputs) -> None:
        for job, (pixels, status, error) in zip(jobs, outputs):
            if pixels is None:
                self.results[job.post_id] = (status, error)
                continue
            self.pending.append((job, self.pool.submit(save_png, job.path, pixels, job, self.model, self.level)))
        while len(self.pending) > self.max_pending:
            self._settle(*self.pending.pop(0))

    def _settle(self, job: Job, fut: Future) -> None:
        fut.result()  # a failed write (disk full, permissions) fails the job: nothing is half-recorded
        self.results[job.post_id] = (S.OK, None)

    def close(self) -> None:
        try:
            for job, fut in self.pending:
                self._settle(job, fut)
        finally:
            self.pending.clear()
            self.pool.shutdown(wait=True)


def job_batches(jobs: list[Job], size: int):
    """The stage's reader: ``jobs`` in order, ``size`` per pipeline call (the last batch may be smaller)."""
    for i in range(0, len(jobs), size):
        yield jobs[i : i + size]


def plan_jobs(rows, fitter: PromptFitter, syn: SynthesisConfig, images: Path, model_id: str, digest: str,
              precision: str) -> tuple[dict[str, list], list[Job]]:
    """The shard's index columns and one :class:`Job` per post with usable text.

    Args:
        rows: the shard's posts (polars: ``post_id``, ``text``, ``status``), in post order.
        fitter: the prompt template fitted to the text encoder's window.
        syn: the ``dreaddit.synthesis`` section.
        images: the image folder.
        model_id: ``models.diffusion.id`` (the index's ``model`` column).
        digest: the pipeline's weights digest (part of each image's recipe).
        precision: ``fp32``, ``fp16`` or ``bf16`` (part of each image's recipe).

    Returns:
        ``(columns, jobs)``: the :data:`tables.DREADDIT_SYNTH` columns as lists, one entry per
        post; ``status`` and ``error`` are None for the posts with a job (settled by
        :func:`settle`); posts without usable text keep their own status.
    """
    cols: dict[str, list] = {k: [] for k in DREADDIT_SYNTH.names}
    jobs: list[Job] = []
    for post_id, text, post_status in rows.iter_rows():
        prompt = truncated = seed = image_path = None
        status, error = post_status, f"post has status {post_status}: no usable text"
        if post_status in S.DREADDIT_HAS_TEXT:
            prompt, truncated = fitter.fit(text)
            seed = post_seed(syn.seed, post_id)
            target = images / image_name(post_id)
            image_path = os.path.abspath(target)  # absolute: readable from any working directory
            jobs.append(Job(post_id, prompt, seed, target, recipe_of(digest, prompt, seed, syn, precision)))
            status, error = None, None  # settled below
        for k, v in (("post_id", post_id), ("image_path", image_path), ("prompt", prompt), ("prompt_truncated", truncated),
                     ("seed", seed), ("model", model_id), ("status", status), ("error", error)):
            cols[k].append(v)
    return cols, jobs


def kept(jobs: list[Job], syn: SynthesisConfig) -> list[bool]:
    """Per job: whether its image exists, decodes, has the size and the job's recipe (checked in threads)."""
    with ThreadPoolExecutor(max_workers=syn.writers) as pool:
        return list(pool.map(lambda j: j.path.is_file() and valid_image(j.path, syn.width, syn.height, j.recipe), jobs))


def settle(cols: dict[str, list], settled: Mapping[str, tuple[str, str | None]]) -> None:
    """Fill the open statuses of :func:`plan_jobs`'s columns from ``settled`` (post_id ->
    ``(status, error)``); a post whose image was not made loses its ``image_path``."""
    for i, pid in enumerate(cols["post_id"]):
        if cols["status"][i] is None:
            cols["status"][i], cols["error"][i] = settled[pid]
            if cols["status"][i] != S.OK:
                cols["image_path"][i] = None


def synthesize_shard(cfg: Mapping, posts: str | Path, shard: int, out: str | Path,
                     images_dir: str | Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """Stage ``synthesize``: the shard's images (kept or made) and its index.

    The jobs (:func:`plan_jobs`) whose image is not kept (:func:`kept`) go through reader
    (:func:`job_batches`), mapper (:class:`Generator`) and writer (:class:`PngWriter`), driven by
    :func:`inference.runner.run`; then the index is written, one row per post of the shard.

    Args:
        cfg: config with ``results``, ``dreaddit`` (``shards``, ``synthesis``) and ``models.diffusion``
            (``models.safety_checker`` when the checker is on); defaults filled by the schema.
        posts: the Dreaddit posts table (:func:`posts.build_posts`).
        shard: the shard number, 0 <= shard < ``dreaddit.shards``.
        out: the index Parquet file (:data:`tables.DREADDIT_SYNTH`).
        images_dir: the PNG folder (default ``{results}/dreaddit/images``).
        threads: torch threads (the job's cores); None leaves torch's default.

    Returns:
        ``{"posts", "kept", "made", "by_status", "prompts_truncated", "oom_splits", "timing"}``
        (``timing``: :meth:`RunStats.as_dict`, None when every image was kept).

    Raises:
        ConfigError: the template or negative prompt leaks the label, or the safety checker is
            asked for and the pipeline has none.
        ModelMissing: the pipeline (or checker) is not on disk, or is not a diffusers folder.
        DeviceMissing: ``dreaddit.synthesis.device`` names CUDA and no GPU is visible.
        OSError: an image could not be written (the shard fails; nothing is half-recorded).
    """
    cfg = validated(cfg)
    dd = DreadditConfig.from_config(cfg)
    syn = dd.synthesis
    check_template(syn.template)  # before any model loads: a leaking template fails at once
    check_negative_prompt(syn.negative_prompt)
    where = synthesis_placement(syn.device, syn.precision, threads)
    device, dtype, precision = where.device, where.dtype, where.precision
    images = Path(images_dir) if images_dir else dd.images_dir
    images.mkdir(parents=True, exist_ok=True)
    rows = read_dreaddit_shard(posts, shard, dd.shards, ["post_id", "text", "status"])

    model = HFModel.from_config(cfg, "diffusion")
    path = resolve(cfg, model)
    model_prov = provenance_of(cfg, model, path, dtype=where.dtype_name, device=str(device))
    fitter = PromptFitter(syn.template, load_tokenizer(path), syn.max_prompt_tokens)

    cols, jobs = plan_jobs(rows, fitter, syn, images, model.id, model_prov["digest"], precision)
    keep = kept(jobs, syn)
    todo = [j for j, k in zip(jobs, keep) if not k]
    log.info("shard %d: %d posts, %d with text; %d images kept from earlier runs, %d to make",
             shard, rows.height, len(jobs), len(jobs) - len(todo), len(todo))

    settled: dict[str, tuple[str, str | None]] = {j.post_id: (S.OK, None) for j, k in zip(jobs, keep) if k}
    stats = None
    oom_splits = 0
    if todo:
        reader = job_batches(todo, syn.batch_size)
        mapper = Generator(load_pipeline(cfg, path, device, dtype), syn)
        writer = PngWriter(model.id, syn.png_compress_level, syn.writers)
        try:
            stats = run(reader, mapper, writer, name=f"synthesize shard {shard}", total=len(todo), unit="images")
        finally:
            writer.close()
        settled.update(writer.results)
        oom_splits = mapper.oom_splits
    settle(cols, settled)

    counts: dict[str, int] = {}
    for s in cols["status"]:
        counts[s] = counts.get(s, 0) + 1
    summary = {"posts": rows.height, "kept": len(jobs) - len(todo), "made": sum(1 for j in todo if settled[j.post_id][0] == S.OK),
               "by_status": counts, "prompts_truncated": sum(1 for t in cols["prompt_truncated"] if t),
               "oom_splits": oom_splits, "timing": stats.as_dict() if stats else None}
    section = rule_params("synthesize_shard", cfg)
    prov = provenance("dreaddit_synth", section, shard=shard, model=model_prov, images_dir=str(images),
                      posts=str(posts), summary=summary)
    write_table(out, pa.table(cols, schema=DREADDIT_SYNTH), DREADDIT_SYNTH, prov)
    log.info("shard %d done: %s", shard, json.dumps(summary))
    return summary
