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
from ..inference.device import device_and_dtype, dtype_name, require_visible_gpu
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
    """The post's seed: stable across processes and machines (never Python's salted ``hash``)."""
    return stable_hash("synthesize", global_seed, post_id)


def image_name(post_id: str) -> str:
    """``<post_id>.png``; post ids are ``dreaddit-<id>`` or ``dreaddit-<split>-line<N>``, safe as names."""
    if "/" in post_id or post_id.startswith("."):
        raise ValueError(f"post_id {post_id!r} is not usable as a file name")
    return f"{post_id}.png"


@dataclass(frozen=True)
class Job:
    post_id: str
    prompt: str
    seed: int
    path: Path
    recipe: str


def recipe_of(model_digest: str, prompt: str, seed: int, syn: SynthesisConfig, precision: str) -> str:
    """What makes an image what it is; an image with another recipe is remade, not kept."""
    spec = {"model": model_digest, "prompt": prompt, "negative": syn.negative_prompt, "seed": seed,
            "steps": syn.steps, "guidance": syn.guidance, "width": syn.width, "height": syn.height,
            "precision": precision, "safety_checker": syn.safety_checker}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def valid_image(path: Path, width: int, height: int, recipe: str) -> bool:
    """An existing image is kept only if it decodes fully, has the size and was made by ``recipe``."""
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
    """Write atomically: a killed job never leaves a half-written image under the final name."""
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
def resolve_precision(syn_device: str, precision: str):
    """fp16 on GPU unless told otherwise (SD weights are published for it), fp32 on CPU."""
    require_visible_gpu(syn_device, "dreaddit.synthesis.device")
    device, _ = device_and_dtype(syn_device, "fp32")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cpu":
        precision = "fp32"
    device, dtype = device_and_dtype(str(device), precision)
    return device, dtype, precision


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
    """The pipeline's (first) tokenizer alone: prompts and recipes are known before the UNet loads."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
    check_tokenizer_complete(tok, f"models.diffusion ({path}/tokenizer)")
    return tok


def load_pipeline(cfg: Mapping, path: Path, device, dtype):
    """The pipeline on ``device`` in ``dtype``, safety checker as configured, tuned for the device."""
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


def _batches(jobs: list[Job], size: int):
    for i in range(0, len(jobs), size):
        yield jobs[i : i + size]


def synthesize_shard(cfg: Mapping, posts: str | Path, shard: int, out: str | Path,
                     images_dir: str | Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """Stage ``synthesize``: the shard's images (kept or made) and its index; returns counts."""
    import torch

    cfg = validated(cfg)
    dd = DreadditConfig.from_config(cfg)
    syn = dd.synthesis
    check_template(syn.template)  # before any model loads: a leaking template fails at once
    check_negative_prompt(syn.negative_prompt)
    if threads:
        torch.set_num_threads(threads)
    images = Path(images_dir) if images_dir else dd.images_dir
    images.mkdir(parents=True, exist_ok=True)
    rows = read_dreaddit_shard(posts, shard, dd.shards, ["post_id", "text", "status"])

    model = HFModel.from_config(cfg, "diffusion")
    path = resolve(cfg, model)
    device, dtype, precision = resolve_precision(syn.device, syn.precision)
    model_prov = provenance_of(cfg, model, path, dtype=dtype_name(dtype), device=str(device))
    fitter = PromptFitter(syn.template, load_tokenizer(path), syn.max_prompt_tokens)

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
            jobs.append(Job(post_id, prompt, seed, target, recipe_of(model_prov["digest"], prompt, seed, syn, precision)))
            status, error = None, None  # settled below
        for k, v in (("post_id", post_id), ("image_path", image_path), ("prompt", prompt), ("prompt_truncated", truncated),
                     ("seed", seed), ("model", model.id), ("status", status), ("error", error)):
            cols[k].append(v)

    with ThreadPoolExecutor(max_workers=syn.writers) as pool:
        keep = list(pool.map(lambda j: j.path.is_file() and valid_image(j.path, syn.width, syn.height, j.recipe), jobs))
    todo = [j for j, k in zip(jobs, keep) if not k]
    log.info("shard %d: %d posts, %d with text; %d images kept from earlier runs, %d to make",
             shard, rows.height, len(jobs), len(jobs) - len(todo), len(todo))

    settled: dict[str, tuple[str, str | None]] = {j.post_id: (S.OK, None) for j, k in zip(jobs, keep) if k}
    stats = None
    oom_splits = 0
    if todo:
        pipe = load_pipeline(cfg, path, device, dtype)
        generator = Generator(pipe, syn)
        writer = PngWriter(model.id, syn.png_compress_level, syn.writers)
        try:
            stats = run(_batches(todo, syn.batch_size), generator, writer, name=f"synthesize shard {shard}",
                        total=len(todo), unit="images")
        finally:
            writer.close()
        settled.update(writer.results)
        oom_splits = generator.oom_splits
    for i, pid in enumerate(cols["post_id"]):
        if cols["status"][i] is None:
            cols["status"][i], cols["error"][i] = settled[pid]
            if cols["status"][i] != S.OK:
                cols["image_path"][i] = None

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
