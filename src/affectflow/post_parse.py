"""Parse one Instagram GraphQL media object (a post's ``.info`` JSON) into a flat row.

The field paths follow what readers of the real dump use (see the dataset notes): the caption in
``edge_media_to_caption``, likes in ``edge_media_preview_like``, and comments under one of three
keys depending on the crawl year, tried in order. A dump may also wrap the media object in
``{"graphql": {"shortcode_media": ...}}``; that is unwrapped.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from . import status as S

COMMENT_KEYS = ("edge_media_to_parent_comment", "edge_media_to_comment", "edge_media_preview_comment")
HASHTAG = re.compile(r"#(\w+)", re.UNICODE)

# Columns that parse_post fills; the ingest stage adds the names, mapping and status columns.
PARSED_FIELDS = (
    "media_id", "shortcode", "typename", "caption", "hashtags", "likes", "comments", "comments_text",
    "comments_shown", "comments_source", "timestamp", "is_video", "width", "height", "aspect_ratio",
    "is_verified", "is_private", "tagged_users", "sponsored", "accessibility_caption", "location",
    "caption_length",
)


class PostError(Exception):
    def __init__(self, status: str, message: str):
        self.status = status
        super().__init__(message)


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _count(d: Any, *path: str) -> int | None:
    v = _get(d, *path)
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _edges(d: Any, *path: str) -> list:
    v = _get(d, *path, "edges")
    return v if isinstance(v, list) else []


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def unwrap(obj: Any) -> dict:
    if isinstance(obj, dict):
        for path in (("graphql", "shortcode_media"), ("data", "shortcode_media"), ("shortcode_media",)):
            inner = _get(obj, *path)
            if isinstance(inner, dict):
                return inner
        return obj
    raise PostError(S.JSON_INVALID, f"top-level JSON is {type(obj).__name__}, not an object")


def load_post(raw: bytes) -> dict:
    """Decode bytes to the media object, raising :class:`PostError` with the status to record."""
    if not raw.strip():
        raise PostError(S.JSON_EMPTY, "empty file" if not raw else "file holds only whitespace")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PostError(S.JSON_CORRUPT, f"invalid JSON: {exc}") from None
    node = unwrap(obj)
    if not any(k in node for k in ("id", "shortcode", "__typename", "edge_media_to_caption", "owner")):
        raise PostError(S.JSON_INVALID, "JSON object has none of the media fields (id, shortcode, owner, ...)")
    return node


def parse_post(node: dict) -> dict[str, Any]:
    """Flatten a media object into the posts-table fields (see :data:`PARSED_FIELDS`)."""
    cap_edges = _edges(node, "edge_media_to_caption")
    caption = _get(cap_edges[0], "node", "text") if cap_edges else None
    caption = caption if isinstance(caption, str) else ""

    comments = comments_text = source = None
    shown = 0
    for key in COMMENT_KEYS:
        block = node.get(key)
        if isinstance(block, dict):
            source = key
            comments = _count(block, "count")
            texts = [t for e in _edges(node, key) if isinstance(t := _get(e, "node", "text"), str) and t]
            shown = len(texts)
            comments_text = "\n".join(texts)
            break

    width, height = _count(node, "dimensions", "width"), _count(node, "dimensions", "height")
    ts = _count(node, "taken_at_timestamp")
    sponsor_edges = _get(node, "edge_media_to_sponsor_user", "edges")
    signals = [v for v in (node.get("is_ad"), node.get("is_paid_partnership")) if isinstance(v, bool)]
    if isinstance(sponsor_edges, list):
        signals.append(bool(sponsor_edges))
    loc = node.get("location")
    media_id = node.get("id")
    return {
        "media_id": str(media_id) if media_id is not None else None,
        "shortcode": node.get("shortcode") if isinstance(node.get("shortcode"), str) else None,
        "typename": node.get("__typename") if isinstance(node.get("__typename"), str) else None,
        "caption": caption,
        "hashtags": [h.lower() for h in HASHTAG.findall(caption)],
        "likes": _count(node, "edge_media_preview_like", "count") if "edge_media_preview_like" in node
        else _count(node, "edge_liked_by", "count"),
        "comments": comments,
        "comments_text": comments_text,
        "comments_shown": shown,
        "comments_source": source,
        "timestamp": ts,  # UTC seconds
        "is_video": _bool(node.get("is_video")),
        "width": width,
        "height": height,
        "aspect_ratio": (width / height) if width and height else None,
        "is_verified": _bool(_get(node, "owner", "is_verified")),
        "is_private": _bool(_get(node, "owner", "is_private")),
        "tagged_users": len(_edges(node, "edge_media_to_tagged_user")),
        "sponsored": any(signals) if signals else None,
        "accessibility_caption": node.get("accessibility_caption") if isinstance(node.get("accessibility_caption"), str) else None,
        "location": _get(loc, "name") if isinstance(_get(loc, "name"), str) else None,
        "caption_length": len(caption),
    }
