"""Pixels are what the file holds (issue kinds 6 and 2): high-bit-depth and float images rescaled to
8 bits or refused by status, a JPEG without its end marker decoded when its scan is complete, an
image whose resize would need gigabytes refused, a MemoryError kept to its item."""

import io

import numpy as np
import pytest
from PIL import Image

from affectflow import status as S
from affectflow.features import image_decode as D
from affectflow.features.image_decode import Preprocess, decode

PRE = Preprocess(size=(32, 32))


def _png(arr: np.ndarray) -> bytes:
    """PNG for 8/16-bit arrays, TIFF for 32-bit integer and float ones (PNG cannot hold them)."""
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    img.save(buf, format="PNG" if arr.dtype in (np.uint8, np.uint16) else "TIFF")
    return buf.getvalue()


def _jpeg(seed=0, progressive=False, size=(96, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    arr = np.clip(np.stack([x * 2, y * 3, x + y], -1) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=85, progressive=progressive)
    return buf.getvalue()


@pytest.mark.parametrize("lo,hi", [(0, 65535), (0, 4095), (30000, 40000)])
def test_16_bit_grayscale_is_rescaled_not_clipped(lo, hi):
    ramp = np.linspace(lo, hi, 64 * 64).reshape(64, 64).astype(np.uint16)
    d = decode(_png(ramp), PRE, "u-1.jpg")  # a PNG under a .jpg name, as in the archive
    assert d.status == S.CONVERTED and d.mode == "I;16" and "16-bit grayscale rescaled to 8 bits" in d.error
    assert d.pixels.mean() == pytest.approx(ramp.mean() / 257, abs=2)
    assert d.pixels.max() <= round(hi / 257) + 1


def test_32_bit_integer_and_float_pixels():
    ok = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.int32)
    d = decode(_png(ok), PRE, "i.tif")
    assert d.mode.startswith("I")
    assert d.status == S.CONVERTED and d.pixels.mean() == pytest.approx(127.5, abs=2)
    wide = decode(_png((ok * 2).astype(np.int32)), PRE, "w.tif")  # values past 16 bits: their scale is unknown
    assert wide.status == S.UNSUPPORTED and "outside 0..65535" in wide.error
    unit = np.linspace(0, 1, 64 * 64).reshape(64, 64).astype(np.float32)
    d = decode(_png(unit), PRE, "f.tif")
    assert d.status == S.CONVERTED and d.mode == "F" and d.pixels.mean() == pytest.approx(127.5, abs=2)
    for bad in (unit * 1000, np.where(unit > 0.5, np.nan, unit).astype(np.float32)):
        d = decode(_png(bad.astype(np.float32)), PRE, "g.tif")
        assert d.status == S.UNSUPPORTED and d.pixels is None and "scale is unknown" in d.error


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("draft", [False, True])
def test_jpeg_without_end_marker_is_decoded_when_its_scan_is_complete(progressive, draft):
    data = _jpeg(progressive=progressive)
    assert data.endswith(D.EOI)
    full = decode(data, PRE, "a.jpg", draft)
    d = decode(data[:-2], PRE, "a.jpg", draft)
    assert d.status == S.REPAIRED and "end-of-image marker missing" in d.error
    assert np.array_equal(d.pixels, full.pixels)
    assert decode(data[:-2] + b"\x00\x00", PRE, "a.jpg", draft).status in (S.OK, S.REPAIRED)


@pytest.mark.parametrize("cut", [3, 12, 100, 400])
def test_jpeg_with_a_cut_scan_stays_corrupt(cut):
    data = _jpeg(seed=1, size=(160, 120))
    d = decode(data[:-cut], PRE, "b.jpg", draft=False)
    assert d.status == S.CORRUPT and d.pixels is None


@pytest.mark.parametrize("size", [(1, 60_000), (60_000, 1), (3, 50_000)])
def test_extreme_aspect_ratio_is_too_large_before_any_resize(size):
    img = Image.new("L", size, 128)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    d = decode(buf.getvalue(), Preprocess(size=(224, 224)), "thin.png", max_pixels=50_000_000)
    assert d.status == S.TOO_LARGE and "would be resized to" in d.error and d.pixels is None
    assert D.fitted_size(Preprocess(size=(224, 224)), *size)[0] * D.fitted_size(Preprocess(size=(224, 224)), *size)[1] > 50_000_000
    # a merely long image still decodes
    assert decode(_png(np.zeros((20, 2000), np.uint8)), PRE, "long.png").status == S.CONVERTED


def test_memory_error_is_the_items_status(monkeypatch):
    def boom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(D, "_load", boom)
    d = decode(_jpeg(), PRE, "m.jpg")
    assert d.status == S.TOO_LARGE and "out of memory" in d.error
