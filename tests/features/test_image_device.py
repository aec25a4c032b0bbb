"""Device-side JPEG decoding (``features.image_embedding.decode: gpu``), checked on CPU tensors:
torchvision's decode_jpeg on the CPU stands in for nvJPEG, the torch-op resize + crop must match
the PIL path and open_clip's own transform, what the device decoder cannot take goes to the CPU
decoder with today's statuses, and the whole stage gives the same table either way."""

import io

import numpy as np
import polars as pl
import pytest
import torch
from feature_fixtures import SHARDS, feature_config, feature_models, ingested  # noqa: F401  (fixtures)
from PIL import Image
from test_image_decode import photo

from affectflow import status as S
from affectflow.features import image_device, image_embed
from affectflow.features.image_decode import ImageBatches, Preprocess, decode, loader
from affectflow.features.image_device import (ByteBatches, DeviceDecoder, device_candidate, fit_tensors,
                                              resolve_decode)
from affectflow.io.multizip import MultiVolumeZip
from affectflow.tables import MEMBER_COLUMNS

SIZES = [(300, 200), (200, 300), (97, 131), (224, 224), (1080, 1350), (640, 480), (50, 400)]
CPU = torch.device("cpu")


def tensor(data: bytes):
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


@pytest.fixture(scope="module")
def vit():
    """Full-size open_clip ViT-B-32, random weights (no download): the real 224-px transform."""
    import open_clip

    torch.manual_seed(0)
    net, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")
    return net.eval(), preprocess


def test_torch_resize_and_crop_match_the_pil_path_pixel_for_pixel(vit):
    pre = Preprocess.from_open_clip(vit[0])
    datas = [photo(s, seed=i) for i, s in enumerate(SIZES)]
    ours = fit_tensors([tensor(d) for d in datas], pre)
    pil = torch.stack([torch.from_numpy(decode(d, pre, draft=False).pixels.copy()).permute(2, 0, 1) for d in datas])
    assert ours.shape == (len(SIZES), 3, 224, 224) and ours.dtype == torch.float32
    assert torch.equal(ours, ours.round()) and ours.min() >= 0 and ours.max() <= 255
    diff = (ours - pil.float()).abs()
    assert diff.max() <= 2  # rounding of the float resize vs PIL's fixed-point one, at a few pixels
    assert diff.mean() < 0.01
    assert torch.equal(ours[SIZES.index((224, 224))], pil[SIZES.index((224, 224))].float())  # no resize: identical


def test_embeddings_from_torch_preprocessing_match_open_clip(vit):
    net, preprocess = vit
    pre = Preprocess.from_open_clip(net)
    datas = [photo(s, seed=i) for i, s in enumerate(SIZES)]
    ref = torch.stack([preprocess(Image.open(io.BytesIO(d))) for d in datas])
    x = fit_tensors([tensor(d) for d in datas], pre)
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    ours = (x / 255 - mean) / std
    assert (ours - ref).abs().max() < 0.03  # <= 2/255 in pixel units, normalised
    with torch.inference_mode():
        a = torch.nn.functional.normalize(net.encode_image(ref), dim=-1)
        b = torch.nn.functional.normalize(net.encode_image(ours), dim=-1)
    assert (a * b).sum(1).min() >= 0.999


def test_squash_mode_resizes_without_crop():
    pre = Preprocess(size=(32, 48), resize_mode="squash")
    data = photo((100, 70))
    ours = fit_tensors([tensor(data)], pre)
    pil = torch.from_numpy(decode(data, pre, draft=False).pixels.copy()).permute(2, 0, 1).float()
    assert ours.shape == (1, 3, 32, 48) and (ours[0] - pil).abs().max() <= 2


def test_only_complete_rgb_jpegs_go_to_the_device():
    pre = Preprocess(size=(224, 224))
    ok = device_candidate(photo((300, 200)), pre, 50_000_000)
    assert ok.status == S.OK and ok.pixels is None
    assert (ok.format, ok.mode, ok.width, ok.height) == ("JPEG", "RGB", 300, 200)
    no_eoi = photo()[:-2]  # scan complete, end marker lost: the CPU decoder repairs it
    for data in [photo(mode="CMYK"), photo(mode="L"), photo(fmt="PNG"), photo()[:-300], no_eoi, b"", b"\xff\xd9" * 4]:
        assert device_candidate(data, pre, 50_000_000) is None
    assert device_candidate(photo((300, 200)), pre, 300 * 200 - 1) is None  # over max_pixels: the CPU decoder says too_large
    thin = photo((2000, 10))  # 20k pixels, but 44800x224 once resized: too_large on both paths
    assert device_candidate(thin, pre, 1_000_000) is None
    assert decode(thin, pre, "thin.jpg", max_pixels=1_000_000).status == S.TOO_LARGE
    assert decode(no_eoi, pre, "x.jpg").status == S.REPAIRED


def test_decode_mode_resolution():
    assert resolve_decode("cpu", CPU) is None and resolve_decode("auto", CPU) is None
    assert resolve_decode("auto", torch.device("cuda")) == torch.device("cuda")
    with pytest.raises(ValueError, match="CUDA"):
        resolve_decode("gpu", CPU)
    with pytest.raises(ValueError):
        resolve_decode("nvjpeg", CPU)


def test_device_rejects_fall_back_to_the_cpu_decoder(monkeypatch):
    """nvJPEG refuses some files PIL reads (arithmetic coding, odd sampling): the batched call fails,
    each image is retried alone, and a refused one is decoded by the CPU decoder."""
    import torchvision.io

    pre = Preprocess(size=(64, 64))
    good, refused = photo((120, 90), seed=1), photo((90, 120), seed=2)
    cut = bytearray(photo((200, 150), seed=3))  # header and EOI intact, scan data destroyed
    start = cut.find(b"\xff\xda")
    cut[start + 20:-2] = b"\x00" * (len(cut) - start - 22)
    real = torchvision.io.decode_jpeg
    calls = []

    def picky(data, **kw):
        calls.append(isinstance(data, list))
        for d in data if isinstance(data, list) else [data]:
            if bytes(d.numpy()) in (refused, bytes(cut)):
                raise RuntimeError("nvjpeg: unsupported")
        return real(data, **kw)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", picky)
    datas = [good, refused, bytes(cut)]
    buf = b"".join(datas)
    batch = {"rows": torch.arange(3), "decoded": torch.zeros(0, dtype=torch.int64),
             "pixels": torch.zeros((0, 64, 64, 3), dtype=torch.uint8),
             "status": [S.OK] * 3, "error": [None] * 3, "format": ["JPEG"] * 3, "mode": ["RGB"] * 3,
             "width": [120, 90, 200], "height": [90, 120, 150],
             "jpeg_at": torch.arange(3), "jpeg_bytes": torch.frombuffer(bytearray(buf), dtype=torch.uint8),
             "jpeg_offsets": torch.tensor(np.cumsum([0] + [len(d) for d in datas])), "jpeg_name": ["a", "b", "c"]}
    dec = DeviceDecoder(pre, CPU)
    x = dec(batch)
    assert calls[0] is True and calls.count(False) == 3  # one batched call, then one per image
    cpu = decode(bytes(cut), pre, "c")
    assert dec.fallbacks == 2
    assert batch["status"][:2] == [S.OK, S.OK] and batch["status"][2] == cpu.status
    kept = [0, 1] + ([2] if cpu.pixels is not None else [])
    assert batch["decoded"].tolist() == kept and x.shape == (len(kept), 3, 64, 64)
    ref = decode(refused, pre, "b", draft=False).pixels
    assert (x[1] - torch.from_numpy(ref.copy()).permute(2, 0, 1).float()).abs().max() <= 2


def test_byte_batches_keep_the_cpu_statuses_and_close_pixels(sample_dir, ingested):
    from affectflow.instagram.plan import read_plan_shard

    pre = Preprocess(size=(64, 64))
    zf = MultiVolumeZip(sample_dir / "instagram/Post_images/posts_image.zip")
    plan = pl.from_arrow(read_plan_shard(ingested / "instagram/plan/images.parquet", 0))
    members = {k: plan[k].to_list() for k in MEMBER_COLUMNS}
    cpu = list(loader(ImageBatches(zf, members, pre, draft=False), 7, 0, 2, False))
    dev = list(loader(ByteBatches(zf, members, pre, draft=False), 7, 2, 2, False))  # bytes cross processes
    on_device = DeviceDecoder(pre, CPU, draft=False)
    sent = 0
    for a, b in zip(cpu, dev, strict=True):
        sent += len(b["jpeg_at"])
        x = on_device(b)
        for key in ("status", "error", "format", "mode", "width", "height"):
            assert a[key] == b[key], key
        assert torch.equal(a["decoded"], b["decoded"])
        diff = (x - a["pixels"].permute(0, 3, 1, 2).float()).abs()
        assert diff.max() <= 2 and diff.mean() < 0.01
    assert sent > 0 and on_device.fallbacks == 0
    statuses = {s for b in cpu for s in b["status"]}
    assert {S.OK, S.CORRUPT, S.EMPTY, S.CONVERTED, S.TOO_LARGE} <= statuses


def test_stage_with_device_decoding_gives_the_same_table(sample_dir, feature_models, ingested, tmp_path,
                                                         monkeypatch):
    from test_image_embed import run_stage

    cfg = feature_config(sample_dir, feature_models, image_embedding={"draft": False})
    cpu, cpu_pooled, cpu_reports = run_stage(cfg, ingested, tmp_path / "cpu")
    assert cpu_reports[0]["decode"] == "cpu"
    # decode: gpu needs CUDA; here torchvision's CPU decoder stands in for nvJPEG, same code path
    monkeypatch.setattr(image_embed, "resolve_decode", lambda mode, device: CPU)
    cfg["features"]["image_embedding"].update(workers=1, batch_size=5)
    dev, dev_pooled, reports = run_stage(cfg, ingested, tmp_path / "dev")
    assert all(r["decode"] == "cpu" and r["device_fallbacks"] == 0 for r in reports)  # the device is the CPU here
    key = ["post_id", "image_index"]
    a, b = cpu.sort(key), dev.sort(key)
    assert a.drop("embedding").equals(b.drop("embedding"))
    has = a["embedding"].is_not_null()
    assert (has == b["embedding"].is_not_null()).all() and has.sum() > 0
    ea, eb = (np.stack(t.filter(has)["embedding"].to_numpy()) for t in (a, b))
    assert (ea * eb).sum(1).min() >= 0.999
    assert cpu_pooled.drop("embedding").sort("post_id").equals(dev_pooled.drop("embedding").sort("post_id"))


def test_decode_option_is_validated():
    from affectflow.features.config import FeaturesConfig

    assert FeaturesConfig.from_config({}).image_embedding.decode == "auto"
    assert FeaturesConfig.from_config({"features": {"image_embedding": {"decode": "gpu"}}}).image_embedding.decode == "gpu"
    with pytest.raises(Exception, match="decode|nvjpeg"):
        FeaturesConfig.from_config({"features": {"image_embedding": {"decode": "nvjpeg"}}})
    assert image_device.DECODE_MODES == ("cpu", "gpu", "auto")
