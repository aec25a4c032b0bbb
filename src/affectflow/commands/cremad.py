"""Commands the CREMA-D rules run: the clips table, per-shard features, the models."""

import json
from pathlib import Path

from ..cli import config_args, command, given_paths, stage_config


def _clips_args(p):
    config_args(p)
    p.add_argument("--out", required=True, type=Path, help="clips.parquet")
    p.add_argument("--summary", required=True, type=Path, help="clips_summary.json")


@command("cremad-clips", "list every CREMA-D clip a file or CSV names, probe its audio and video, split by actor",
         _clips_args)
def clips(args):
    from ..cremad.clips import build_clips

    s = build_clips(stage_config(args), args.out, args.summary)
    print(json.dumps({k: s[k] for k in ("clips", "audio", "video", "by_split")}, indent=2))


def _shard_args(p):
    config_args(p)
    p.add_argument("--clips", required=True, type=Path, help="the clips table the shard is cut from")
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, help="cores of the job (the rule passes {threads})")


@command("cremad-egemaps", "one shard: eGeMAPS v02 functionals of every clip's audio (openSMILE)", _shard_args)
def egemaps(args):
    from ..cremad.audio import egemaps_shard

    egemaps_shard(stage_config(args), args.clips, args.shard, args.out, args.threads)


@command("cremad-speech", "one shard: the learned speech encoder (models.speech) on every clip's audio", _shard_args)
def speech(args):
    from ..cremad.audio import speech_shard

    speech_shard(stage_config(args), args.clips, args.shard, args.out, args.threads)


@command("cremad-video", "one shard: frames decoded in place, CLIP image embeddings pooled over time", _shard_args)
def video(args):
    from ..cremad.video import video_shard

    video_shard(stage_config(args), args.clips, args.shard, args.out, args.threads)


def _text_args(p):
    config_args(p)
    p.add_argument("--clips", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int)


@command("cremad-text", "every clip's sentence through models.text_embedding (the text-only control)", _text_args)
def text(args):
    from ..cremad.text import text_table

    text_table(stage_config(args), args.clips, args.out, args.threads)


def _train_args(p):
    config_args(p)
    p.add_argument("--clips", required=True, type=Path)
    p.add_argument("--audio", nargs="*", default=[], help="eGeMAPS shards")
    p.add_argument("--speech", nargs="*", default=[], help="speech-encoder shards (when enabled)")
    p.add_argument("--video", nargs="*", default=[], help="video shards")
    p.add_argument("--text", nargs="*", default=[], help="the text table")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--threads", type=int)


@command("cremad-train", "emotion models per modality and fused, split by actor; metrics, predictions, figures",
         _train_args)
def train(args):
    from ..cremad.train import train_all

    features = {m: given_paths(getattr(args, m)) for m in ("audio", "speech", "video", "text")}
    m = train_all(stage_config(args), args.clips, {k: v for k, v in features.items() if v}, args.out_dir, args.threads)
    print(json.dumps({name: {k: round(r["test"]["emotion"][k]["mean"], 4) for k in ("accuracy", "f1_macro", "uar")}
                      for name, r in m["models"].items()}, indent=2))
