"""Small hostile inputs for the fault-isolation tests: post JSON mutated the ways real dumps and
attackers break it, and tiny datasets in the published layout built around them."""

from __future__ import annotations

import json
import random
from pathlib import Path

from affectflow.ops import sample as SM


def clean_posts(n: int, seed: int = 0, user: str = "00001_mossfit") -> list[tuple[str, bytes]]:
    """``n`` realistic posts as ``(media_id, JSON bytes)`` (the sample's own generator)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        media_id = str(10**18 + seed * 10_000 + k)
        node = SM._node(rng, user, media_id, "food", 5000, k, SM._caption(rng, "food", k), "GraphImage")
        out.append((media_id, json.dumps(node, ensure_ascii=False).encode()))
    return out


def _media(raw: bytes) -> dict:
    obj = json.loads(raw)
    return obj.get("graphql", {}).get("shortcode_media", obj)


def _swap_like(raw: bytes, value: bytes) -> bytes:
    obj = json.loads(raw)
    node = obj.get("graphql", {}).get("shortcode_media", obj)
    node["edge_media_preview_like"] = {"count": "@@"}
    return json.dumps(obj).encode().replace(b'"@@"', value)


def _top(raw: bytes, fn) -> bytes:
    obj = json.loads(raw)
    node = obj.get("graphql", {}).get("shortcode_media", obj)
    fn(node)
    return json.dumps(obj).encode()


# name -> mutation of one post's bytes. Each is something a dump or an attacker produces.
MUTATIONS = {
    "bom": lambda r: b"\xef\xbb\xbf" + r,
    "bom_twice": lambda r: b"\xef\xbb\xbf\xef\xbb\xbf" + r,
    "bom_then_space": lambda r: b"\xef\xbb\xbf  " + r,
    "bom_only": lambda r: b"\xef\xbb\xbf",
    "leading_ws": lambda r: b" \n\t" + r,
    "trailing_ws": lambda r: r + b"\r\n\n",
    "pretty": lambda r: json.dumps(json.loads(r), indent=2).encode(),
    "crlf_pretty": lambda r: json.dumps(json.loads(r), indent=1).encode().replace(b"\n", b"\r\n"),
    "likes_neg": lambda r: _swap_like(r, b"-1"),
    "likes_neg_big": lambda r: _swap_like(r, b"-5000"),
    "likes_float": lambda r: _swap_like(r, b"12.0"),
    "likes_exp": lambda r: _swap_like(r, b"1e3"),
    "likes_str": lambda r: _swap_like(r, b'"12"'),
    "likes_bool": lambda r: _swap_like(r, b"true"),
    "likes_huge": lambda r: _swap_like(r, b"99999999999999999999"),
    "likes_u64": lambda r: _swap_like(r, b"18446744073709551615"),
    "likes_nan": lambda r: _swap_like(r, b"NaN"),
    "likes_null": lambda r: _swap_like(r, b"null"),
    "likes_neg_zero": lambda r: _swap_like(r, b"-0"),
    "likes_obj": lambda r: _swap_like(r, b"{}"),
    "id_number": lambda r: _top(r, lambda n: n.__setitem__("id", 123)),
    "caption_number": lambda r: _top(r, lambda n: n.__setitem__("edge_media_to_caption", {"edges": [{"node": {"text": 5}}]})),
    "edges_object": lambda r: _top(r, lambda n: n.__setitem__("edge_media_to_caption", {"edges": {"node": 1}})),
    "owner_list": lambda r: _top(r, lambda n: n.__setitem__("owner", [1])),
    "is_video_int": lambda r: _top(r, lambda n: n.__setitem__("is_video", 1)),
    "dims_negative": lambda r: _top(r, lambda n: n.__setitem__("dimensions", {"width": -5, "height": 10})),
    "ts_float": lambda r: _top(r, lambda n: n.__setitem__("taken_at_timestamp", 1.5e9)),
    "graphql_string": lambda r: json.dumps({**_media(r), "graphql": "x"}).encode(),
    "wrapped": lambda r: json.dumps({"graphql": {"shortcode_media": _media(r)}}).encode(),
    "dup_key": lambda r: r[:-1] + b', "graphql": {"shortcode_media": {"id": "dup"}}}',
    "lone_surrogate": lambda r: r.replace(b'"text": "', b'"text": "\\ud800', 1),
    "escaped_pair": lambda r: r.replace(b'"text": "', b'"text": "\\ud83d\\ude00', 1),
    "nul_escape": lambda r: r.replace(b'"text": "', b'"text": "a\\u0000b', 1),
    "raw_control": lambda r: r.replace(b'"text": "', b'"text": "\x01', 1),
    "invalid_utf8": lambda r: r.replace(b'"text": "', b'"text": "\xff\xfe', 1),
    "truncated": lambda r: r[: len(r) // 2],
    "trailing_garbage": lambda r: r + b" x",
    "two_objects": lambda r: r + b" " + r,
    "trailing_comma": lambda r: r[:-1] + b",}",
    "comment": lambda r: r + b" // note",
    "deep": lambda r: r[:-1] + b', "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "top_array": lambda r: b"[" + r + b"]",
    "top_string": lambda r: b'"hello"',
    "top_null": lambda r: b"null",
    "not_a_post": lambda r: b'{"foo": 1}',
    "empty": lambda r: b"",
    "spaces": lambda r: b"   \n ",
    "nul_byte": lambda r: r + b"\x00",
    "single_quotes": lambda r: r.replace(b'"', b"'"),
}


def write_dataset(root: Path, posts: list[tuple[str, bytes]], user: str = "00001_mossfit",
                  split_size: str = "64k", extra_mapping: list[str] | None = None) -> Path:
    """A dataset in the published layout holding exactly ``posts`` (one tiny JPEG each)."""
    staging = root / "staging"
    (staging / "info").mkdir(parents=True, exist_ok=True)
    (staging / "image").mkdir(parents=True, exist_ok=True)
    jpeg = SM._jpeg(random.Random(0), (8, 8))
    rows = []
    for media_id, raw in posts:
        (staging / "info" / f"{user}-{media_id}.info").write_bytes(raw)
        (staging / "image" / f"{user}-{media_id}.jpg").write_bytes(jpeg)
        rows.append(SM.mapping_row(user, f"{media_id}.info", [f"{media_id}.jpg"]))
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "JSON-Image_files_mapping.txt").write_text("\n".join([SM.MAPPING_HEADER, *rows, *(extra_mapping or [])]) + "\n")
    SM.write_influencers(data / "influencers.txt", [(user, "food", 5000, 100, len(posts))])
    SM.split_zip(staging, sorted("info/" + p.name for p in (staging / "info").iterdir()),
                 data / "Post_metadata" / "posts_info.zip", split_size)
    SM.split_zip(staging, sorted("image/" + p.name for p in (staging / "image").iterdir()),
                 data / "Post_images" / "posts_image.zip", split_size)
    return data
