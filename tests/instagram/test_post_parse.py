"""The bulk Arrow parser equals the Python reference, post for post, on the sample and on random
variations of it (missing keys, nulls, wrappers, comment-key variants, odd values, faults)."""

from __future__ import annotations

import copy
import json
import random

import pyarrow as pa
import pytest

from affectflow import status as S
from affectflow.instagram.post_parse import (
    COMMENT_KEYS,
    PARSED_SCHEMA,
    PostError,
    _columns,
    _read_block,
    load_post,
    parse_post,
    parse_posts,
    rows_to_table,
    unwrap,
)
from affectflow.io.multizip import MultiVolumeZip


def reference(raws: list[bytes]) -> tuple[pa.Table, list[tuple[int, str]]]:
    rows, failures = [], []
    for i, raw in enumerate(raws):
        try:
            rows.append(parse_post(load_post(raw)))
        except PostError as exc:
            rows.append(None)
            failures.append((i, exc.status))
    return rows_to_table(rows), failures


@pytest.fixture(scope="module")
def nodes(sample_dir) -> list[dict]:
    """The sample's well-formed media objects (unwrapped)."""
    out = []
    with MultiVolumeZip(sample_dir / "instagram" / "Post_metadata" / "posts_info.zip") as zf:
        for m in zf.members():
            try:
                out.append(unwrap(json.loads(zf.read(m, max_size=1 << 20))))
            except Exception:  # noqa: BLE001  (the sample's planted faults)
                continue
    assert len(out) > 80
    return out


def _vary(rng: random.Random, node: dict) -> dict:
    """A schema-conformant variation: keys dropped or nulled, edge lists emptied, values moved."""
    n = copy.deepcopy(node)
    for _ in range(rng.randrange(0, 6)):
        op = rng.randrange(12)
        if op == 0 and n:
            n.pop(rng.choice(sorted(n)))
        elif op == 1 and n:
            n[rng.choice(sorted(n))] = None
        elif op == 2:  # move the comments to another of the three keys, or add a second block
            block = {"count": rng.randrange(100), "edges": [{"node": {"text": rng.choice(["", "nice", "😍 wow", None])}}
                                                           for _ in range(rng.randrange(4))]}
            n[rng.choice(COMMENT_KEYS)] = block
        elif op == 3:
            n["edge_media_to_caption"] = {"edges": rng.choice([[], [{"node": {}}], [{"node": {"text": None}}],
                                                               [{"node": {"text": "#Ünïcode #tag_1 #日本 x#y"}},
                                                                {"node": {"text": "second"}}]])}
        elif op == 4:
            n.pop("edge_media_preview_like", None)
            n["edge_liked_by"] = rng.choice([{"count": 7}, {}, None])
        elif op == 5:
            n["dimensions"] = {"width": rng.choice([0, 1080, -5, 1 << 31, None]), "height": rng.choice([0, 1350, 1 << 40])}
        elif op == 6:
            n["taken_at_timestamp"] = rng.choice([0, -1, 10**11, 10**11 - 1, 1_500_000_000, None])
        elif op == 7:
            n["is_ad"] = rng.choice([True, False, None])
            n["is_paid_partnership"] = rng.choice([True, False, None])
            n["edge_media_to_sponsor_user"] = rng.choice([{"edges": []}, {"edges": [{}]}, {}, None])
        elif op == 8:
            n["edge_media_to_tagged_user"] = rng.choice([{"edges": []}, {"edges": [{}, {"node": {}}]}, {}, None])
        elif op == 9:
            n["owner"] = rng.choice([{}, {"is_verified": True}, None, {"is_private": False, "extra": [1, 2]}])
        elif op == 10:
            n["location"] = rng.choice([None, {}, {"name": "Zürich"}, {"name": None}])
        elif op == 11:
            n["likes_extra"] = {"anything": [1, "x", {"deep": None}]}  # unknown keys are ignored
    return n


def _encode(rng: random.Random, node: dict) -> bytes:
    wrap = rng.randrange(5)
    obj = node if wrap < 2 else {"graphql": {"shortcode_media": node}} if wrap == 2 else \
        {"data": {"shortcode_media": node}} if wrap == 3 else {"shortcode_media": node}
    indent = rng.choice([None, None, 2])
    text = json.dumps(obj, ensure_ascii=rng.random() < 0.5, indent=indent)
    if indent and rng.random() < 0.5:
        text = text.replace("\n", "\r\n")
    return text.encode()


def test_fast_path_equals_reference_on_the_sample(nodes):
    raws = [json.dumps(n, ensure_ascii=False).encode() for n in nodes]
    block = _read_block(raws)
    assert block is not None  # every sample post goes through the Arrow reader
    table, is_post = _columns(block)
    ref, failures = reference(raws)
    assert failures == [] and pa.compute.all(is_post).as_py()
    assert table.equals(ref)


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_equals_reference_on_variations(nodes, seed):
    rng = random.Random(seed)
    raws = [_encode(rng, _vary(rng, rng.choice(nodes))) for _ in range(300)]
    block = _read_block(raws)
    assert block is not None, "conformant variations must not need the fallback"
    table, is_post = _columns(block)
    ref, failures = reference(raws)
    invalid = [i for i, ok in enumerate(is_post.to_pylist()) if not ok]
    assert invalid == [i for i, st in failures if st == S.JSON_INVALID] and len(failures) == len(invalid)
    keep = pa.array([ok for ok in is_post.to_pylist()])
    assert table.filter(keep).equals(ref.filter(keep))
    got, fails = parse_posts(raws)
    assert got.equals(ref) and [f[:2] for f in fails] == failures


FAULTS = [
    (b"", S.JSON_EMPTY),
    (b" \n\t ", S.JSON_EMPTY),
    (b'{"id": "1", "shortcode": "tru', S.JSON_CORRUPT),
    (b"[1, 2, 3]", S.JSON_INVALID),
    (b'"just a string"', S.JSON_INVALID),
    (b"{}", S.JSON_INVALID),
    (b'{"graphql": {"shortcode_media": {}}, "id": "9"}', S.JSON_INVALID),  # the wrapper wins, and is empty
    (b'{"id": "1"} {"id": "2"}', S.JSON_CORRUPT),  # two objects in one file
    (b'{"id": "1", "caption": "\xff\xfe"}', S.JSON_CORRUPT),  # not UTF-8
    (b'{"id": 5, "edge_media_preview_like": {"count": "12"}}', None),  # odd types: Python path, parsed
    (b'{"id": "5", "dimensions": {"width": 1.5e300, "height": 2}}', None),
    (b'{"id": "5", "edge_media_to_comment": {"count": 3, "edges": [{"node": "not an object"}]}}', None),
    (b'{"id": "5", "is_video": "yes", "owner": {"is_verified": 1}}', None),
]


@pytest.mark.parametrize("seed", range(3))
def test_faults_are_isolated_and_the_rest_parsed_identically(nodes, seed):
    """Bad posts mixed into a block: the block is bisected, the bad ones get their status, and every
    row still equals the reference."""
    rng = random.Random(100 + seed)
    raws = [_encode(rng, _vary(rng, rng.choice(nodes))) for _ in range(500)]
    planted = {}
    for raw, status in FAULTS:
        i = rng.randrange(len(raws))
        raws.insert(i, raw)
    for i, raw in enumerate(raws):
        for fraw, status in FAULTS:
            if raw == fraw:
                planted[i] = status
    got, failures = parse_posts(raws)
    ref, ref_failures = reference(raws)
    assert got.equals(ref)
    assert [f[:2] for f in failures] == ref_failures
    statuses = dict(f[:2] for f in failures)
    for i, status in planted.items():
        assert statuses.get(i) == status, (raws[i], statuses.get(i))


def test_reference_rules():
    """The definition where JSON allows doubt (see the module docstring)."""
    row = parse_post(load_post(json.dumps({
        "id": 123, "edge_media_preview_like": None, "edge_liked_by": {"count": 4},
        "edge_media_to_parent_comment": None, "edge_media_to_comment": {"count": 2, "edges": [
            {"node": {"text": "a"}}, {"node": {"text": ""}}, {"node": {}}, {"node": {"text": "b"}}]},
        "edge_media_preview_comment": {"count": 99, "edges": []},
        "dimensions": {"width": 1 << 31, "height": 100}, "taken_at_timestamp": 10**12,
        "edge_media_to_caption": {"edges": [{"node": {"text": "Hi #Tag #tag2"}}]},
        "is_ad": None, "edge_media_to_sponsor_user": {"edges": []},
    }).encode()))
    assert row["media_id"] == "123" and row["likes"] == 4
    assert (row["comments_source"], row["comments"], row["comments_text"], row["comments_shown"]) == \
        ("edge_media_to_comment", 2, "a\nb", 2)
    assert row["width"] is None and row["height"] == 100 and row["aspect_ratio"] is None
    assert row["timestamp"] is None and row["sponsored"] is False
    assert row["hashtags"] == ["tag", "tag2"] and row["caption"] == "Hi #Tag #tag2"
    with pytest.raises(PostError) as exc:
        load_post(b'{"id": null, "owner": null}')
    assert exc.value.status == S.JSON_INVALID


def test_empty_block():
    table, failures = parse_posts([])
    assert table.num_rows == 0 and table.schema.equals(PARSED_SCHEMA) and failures == []
