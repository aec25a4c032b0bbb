"""The GPU check must not rot while no GPU runs it: its --cpu-smoke mode runs every check (the
project's own stage functions, tiny models, torchvision's CPU JPEG decoder standing in for nvJPEG)
and each must pass its correctness test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cpu_smoke_runs_every_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--cpu-smoke", "--work",
                        str(tmp_path / "work"), "--out", str(out)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads(out.read_text())
    names = ["sentiment", "text_embeddings", "image_embeddings[decode=cpu]", "image_embeddings[decode=gpu]",
             "synthesis[1 step]", "synthesis[4 steps]", "dreaddit_clip", "finetune", "sweep_trial", "cremad_video"]
    assert report["mode"] == "cpu-smoke" and list(report["checks"]) == names
    checks = report["checks"]
    for name in names:
        r = checks[name]
        assert r["ok"] and r["finite"] and "error" not in r, (name, r)
        assert r["items_per_s"] > 0, name
    for name in ("sentiment", "text_embeddings", "image_embeddings[decode=gpu]", "dreaddit_clip"):
        r = checks[name]
        assert r["items"] > 0 and {"read_s", "inference_s", "write_s", "bottleneck"} <= set(r), name
    assert checks["text_embeddings"]["cosine_min_vs_fp32"] >= 0.999
    gpu = checks["image_embeddings[decode=gpu]"]
    assert gpu["cosine_min_vs_cpu_decode"] >= 0.999 and gpu["compared_cpu_decode"] > 0
    assert gpu["by_status"] == checks["image_embeddings[decode=cpu]"]["by_status"]
    assert checks["synthesis[4 steps]"]["steps"] == 4 and checks["synthesis[1 step]"]["images"] > 0
    cm = checks["cremad_video"]
    assert cm["compared"] == 4 and cm["cosine_min_vs_fp32"] >= 0.999 and cm["frames"] == 4 * 13
    assert set(report["goals_items_per_s"]) <= set(names)
    assert "image_embeddings[decode=gpu]" in p.stdout and "items/s" in p.stdout  # the table
