"""Decoding images from the archive: every bad input gets a status, never a placeholder; the fast
path (draft decoding, our resize + crop) matches the model's own preprocessing."""

import io
import pickle

import numpy as np
import polars as pl
import pytest
from feature_fixtures import feature_config, feature_models, ingested  # noqa: F401  (fixtures)
from PIL import Image

from affectflow import status as S
from affectflow.features.image_decode import ImageBatches, Preprocess, decode, loader
from affectflow.io.multizip import MultiVolumeZip
from affectflow.tables import MEMBER_COLUMNS

PRE = Preprocess(size=(224, 224))


def photo(size=(300, 200), mode="RGB", fmt="JPEG", quality=90, seed=0) -> bytes:
    """A smooth, photo-like image (gradients + shapes), so decoders and resizers have real work."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 255 / w), (y * 255 / h), ((x + y) * 127 / (w + h))], -1)
    arr += rng.normal(0, 8, arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def with_declared_size(jpeg: bytes, w: int, h: int) -> bytes:
    data = bytearray(jpeg)
    i = data.find(b"\xff\xc0")  # baseline SOF: marker, length, precision, height, width
    data[i + 5 : i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(data)


def test_rgb_jpeg_is_ok_with_its_facts():
    d = decode(photo(), PRE, "x.jpg")
    assert d.status == S.OK and d.error is None
    assert (d.format, d.mode, d.width, d.height) == ("JPEG", "RGB", 300, 200)
    assert d.pixels.shape == (224, 224, 3) and d.pixels.dtype == np.uint8


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG")])
def test_readable_non_rgb_jpeg_is_converted_and_recorded(mode, fmt):
    d = decode(photo(mode=mode, fmt=fmt), PRE, "x.jpg")
    assert d.status == S.CONVERTED and (d.format, d.mode) == (fmt, mode)
    assert d.pixels.shape == (224, 224, 3) and f"{fmt} {mode}" in d.error


@pytest.mark.parametrize("data,status", [
    (b"", S.EMPTY),
    (b"this is not an image at all" * 10, S.CORRUPT),
    (photo()[:200], S.CORRUPT),  # header intact, data cut: never padded with grey
    (photo()[: len(photo()) // 2], S.CORRUPT),
    (with_declared_size(photo((32, 32)), 60000, 60000), S.TOO_LARGE),  # PIL's own bomb guard
    (with_declared_size(photo((32, 32)), 9000, 9000), S.TOO_LARGE),  # 81 Mpx: under PIL's, over ours
])
def test_unreadable_images_get_a_status_and_no_pixels(data, status):
    d = decode(data, PRE, "bad.jpg", max_pixels=50_000_000)
    assert d.status == status and d.pixels is None
    assert d.error.startswith("bad.jpg")


def test_our_resize_and_crop_match_open_clip_preprocessing(sample_dir, feature_models):
    import torch

    from affectflow.models import load_clip

    cfg = feature_config(sample_dir, feature_models)
    net, preprocess, _, _ = load_clip(cfg)
    pre = Preprocess.from_open_clip(net)
    assert pre.size == (64, 64)
    for size in [(300, 200), (200, 300), (97, 131), (64, 64)]:
        data = photo(size)
        ref = preprocess(Image.open(io.BytesIO(data)))
        ours = torch.from_numpy(decode(data, pre, draft=False).pixels.copy()).permute(2, 0, 1).float()
        ours = (ours / 255 - torch.tensor(pre.mean).view(3, 1, 1)) / torch.tensor(pre.std).view(3, 1, 1)
        assert torch.allclose(ours, ref, atol=1e-5), size


def test_draft_decodes_large_jpegs_at_reduced_scale_with_nearly_the_same_pixels(monkeypatch):
    from PIL import JpegImagePlugin

    data = photo((1080, 1350), quality=85)
    scales = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        before = self.size
        out = real(self, mode, size)
        scales.append(before[0] // self.size[0])
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fast = decode(data, PRE, draft=True)
    assert scales == [4]  # 1080x1350 -> 270x338 for a 224-px model
    slow = decode(data, PRE, draft=False)
    assert fast.status == slow.status == S.OK and (fast.width, fast.height) == (1080, 1350)
    assert np.abs(fast.pixels.astype(int) - slow.pixels.astype(int)).mean() < 3


def test_batches_decode_the_same_in_worker_processes(sample_dir, ingested):
    from affectflow.instagram.plan import read_plan_shard

    zf = MultiVolumeZip(sample_dir / "instagram/Post_images/posts_image.zip")
    plan = pl.from_arrow(read_plan_shard(ingested / "instagram/plan/images.parquet", 0))
    ds = ImageBatches(zf, {k: plan[k].to_list() for k in MEMBER_COLUMNS}, Preprocess(size=(64, 64)))
    ds[[0]]  # opens handles in this process ...
    assert pickle.loads(pickle.dumps(ds)).zf._maps == {}  # ... which never travel to a worker

    def collect(workers):
        rows, status, pixels = [], [], []
        for b in loader(ds, batch_size=7, workers=workers, prefetch_factor=2, pin_memory=False):
            rows += b["rows"].tolist()
            status += b["status"]
            pixels.append(b["pixels"].numpy())
        return rows, status, np.concatenate(pixels)

    one, two = collect(0), collect(2)
    assert one[0] == two[0] == list(range(len(ds)))  # plan order kept
    assert one[1] == two[1] and np.array_equal(one[2], two[2])
    assert {S.OK, S.CORRUPT, S.EMPTY, S.CONVERTED, S.TOO_LARGE} <= set(one[1])
