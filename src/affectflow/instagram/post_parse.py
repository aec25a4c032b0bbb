"""Parse Instagram GraphQL media objects (a post's ``.info`` JSON) into posts-table columns.

The field paths follow what readers of the real dump use (see the dataset notes): the caption in
``edge_media_to_caption``, likes in ``edge_media_preview_like`` (else ``edge_liked_by``), and
comments under one of three keys depending on the crawl year, tried in order. A dump may also
wrap the media object in ``{"graphql": {"shortcode_media": ...}}``; that is unwrapped.

Two implementations of one definition:

* :func:`parse_posts` (the hot path) parses a whole block of posts with Arrow's C++ JSON reader
  against an explicit schema of just the fields we keep, and derives the columns with Arrow
  compute: no Python object per JSON value, ~4x faster than ``orjson`` + a dict walk.
* :func:`load_post` + :func:`parse_post` handle one post in Python. They are the reference.

Which posts the bulk reader sees is decided per post, in one pass, before the bulk read
(:func:`screen`): each post is decoded by ``orjson`` (the definition of valid JSON, so both
paths accept and reject exactly the same bytes: a BOM, 3000 nested brackets or a bare ``null``
are not Arrow's to judge). Posts that fail to decode get ``json_corrupt``, the valid ones go to
Arrow in one read. When the reader rejects that block (a kept field of another type: a count as
a float or string, an id as a number), each post's kept fields are checked against the reader's
schema (:func:`fits_schema`): those that do not fit are parsed by the Python reference, the rest
read again by Arrow. A post's row never depends on which other posts share its block, i.e. on
the shard count (tested on a mutated corpus). Should the reader reject even a checked block (a
JSON oddity the check does not model, such as a duplicated key), it is split in halves until the
posts it rejects are isolated: a safety net, not the common path.

The definition, where JSON allows doubt: a leading UTF-8 byte-order mark is ignored (RFC 8259
§8.1 allows it); an object-valued key counts as present only when it is an object (``null`` =
absent); counts are integers within int64 (else null), and a negative count (how dumps show a
count the author hid) is null with ``likes_hidden``/``comments_hidden`` true; ``width``/``height``
within int32; ``taken_at_timestamp`` within ±10^11 s; a post is ``json_invalid`` when the media
object has none of ``id, shortcode, __typename, edge_media_to_caption, owner`` (non-null).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from .. import status as S
from ..io import arrays as A
from ..tables import POSTS

COMMENT_KEYS = ("edge_media_to_parent_comment", "edge_media_to_comment", "edge_media_preview_comment")
MEDIA_KEYS = ("id", "shortcode", "__typename", "edge_media_to_caption", "owner")
WRAPPERS = (("graphql", "shortcode_media"), ("data", "shortcode_media"), ("shortcode_media",))
HASHTAG = re.compile(r"#(\w+)", re.UNICODE)
INT64 = (-(1 << 63), 1 << 63)
INT32 = (-(1 << 31), 1 << 31)
MAX_TIMESTAMP = 10**11  # seconds; beyond is garbage (year 5138), not a date

# Columns that parse_post fills; the ingest stage adds the names, mapping and status columns.
PARSED_FIELDS = (
    "media_id", "shortcode", "typename", "caption", "hashtags", "likes", "comments", "likes_hidden", "comments_hidden",
    "comments_text",
    "comments_shown", "comments_source", "timestamp", "is_video", "width", "height", "aspect_ratio",
    "is_verified", "is_private", "tagged_users", "sponsored", "accessibility_caption", "location",
    "caption_length",
)
PARSED_SCHEMA = pa.schema([POSTS.field(k) for k in PARSED_FIELDS])


class PostError(Exception):
    """A post file that cannot be parsed; ``status`` is the posts table's status to record
    (``json_empty``, ``json_corrupt``, ``json_invalid``, ``too_large`` ...), the message goes to ``error``."""

    def __init__(self, status: str, message: str):
        self.status = status
        super().__init__(message)


# -- one post in Python (reference and fallback) --------------------------------------------------
def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _int(v: Any, bounds: tuple[int, int] = INT64) -> int | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            v = int(v)
        except (OverflowError, ValueError):  # inf, nan
            return None
        return v if bounds[0] <= v < bounds[1] else None
    return None


def _count(d: Any, *path: str) -> int | None:
    return _int(_get(d, *path))


def _edges(d: Any, *path: str) -> list:
    v = _get(d, *path, "edges")
    return v if isinstance(v, list) else []


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def unwrap(obj: Any) -> dict:
    """The media object inside a decoded post file (the first of :data:`WRAPPERS` that holds one, else ``obj``).

    Raises:
        PostError: ``json_invalid`` when the top level is not a JSON object.
    """
    if isinstance(obj, dict):
        for path in WRAPPERS:
            inner = _get(obj, *path)
            if isinstance(inner, dict):
                return inner
        return obj
    raise PostError(S.JSON_INVALID, f"top-level JSON is {type(obj).__name__}, not an object")


_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")
BOM = b"\xef\xbb\xbf"


def _blank(raw: bytes) -> bool:
    return not raw or (raw[0] in _WHITESPACE and not raw.strip())


def strip_bom(raw: bytes) -> bytes:
    """``raw`` without a leading UTF-8 byte-order mark (the one byte sequence both paths drop)."""
    return raw[3:] if raw[:3] == BOM else raw


NOT_A_POST = "JSON object has none of the media fields (id, shortcode, owner, ...)"


def decode(raw: bytes) -> Any:
    """Bytes -> the JSON value, by the one definition of valid JSON (orjson, BOM ignored).

    Raises:
        PostError: ``json_empty`` (no bytes, or whitespace only) or ``json_corrupt``; a
            ``MemoryError`` while decoding is ``too_large``.
    """
    raw = strip_bom(raw)
    if _blank(raw):
        raise PostError(S.JSON_EMPTY, "empty file" if not raw else "file holds only whitespace")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PostError(S.JSON_CORRUPT, f"invalid JSON: {exc}") from None
    except MemoryError:
        raise PostError(S.TOO_LARGE, f"out of memory decoding {len(raw)} bytes of JSON") from None


def media(obj: Any) -> dict:
    """The media object inside a decoded post, or :class:`PostError` ``json_invalid``."""
    node = unwrap(obj)
    if all(node.get(k) is None for k in MEDIA_KEYS):
        raise PostError(S.JSON_INVALID, NOT_A_POST)
    return node


def load_post(raw: bytes) -> dict:
    """Decode bytes to the media object, raising :class:`PostError` with the status to record."""
    return media(decode(raw))


def _hidden(count: int | None) -> tuple[int | None, bool]:
    """A negative count is a hidden one: null, flagged."""
    return (None, True) if count is not None and count < 0 else (count, False)


def parse_post(node: dict) -> dict[str, Any]:
    """Flatten a media object into the posts-table fields.

    Returns:
        ``{field: value}`` for every name of :data:`PARSED_FIELDS` (missing values None; the
        caption an empty string when absent).
    """
    cap_edges = _edges(node, "edge_media_to_caption")
    caption = _str(_get(cap_edges[0], "node", "text")) if cap_edges else None
    caption = caption if caption is not None else ""

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

    width = _int(_get(node, "dimensions", "width"), INT32)
    height = _int(_get(node, "dimensions", "height"), INT32)
    ts = _count(node, "taken_at_timestamp")
    sponsor_edges = _get(node, "edge_media_to_sponsor_user", "edges")
    signals = [v for v in (node.get("is_ad"), node.get("is_paid_partnership")) if isinstance(v, bool)]
    if isinstance(sponsor_edges, list):
        signals.append(bool(sponsor_edges))
    media_id = node.get("id")
    likes_block = "edge_media_preview_like" if isinstance(node.get("edge_media_preview_like"), dict) else "edge_liked_by"
    likes, likes_hidden = _hidden(_count(node, likes_block, "count"))
    comments, comments_hidden = _hidden(comments)
    return {
        "media_id": str(media_id) if media_id is not None else None,
        "shortcode": _str(node.get("shortcode")),
        "typename": _str(node.get("__typename")),
        "caption": caption,
        "hashtags": [h.lower() for h in HASHTAG.findall(caption)],
        "likes": likes,
        "comments": comments,
        "likes_hidden": likes_hidden,
        "comments_hidden": comments_hidden,
        "comments_text": comments_text,
        "comments_shown": shown,
        "comments_source": source,
        "timestamp": ts * 1000 if ts is not None and -MAX_TIMESTAMP < ts < MAX_TIMESTAMP else None,  # UTC ms
        "is_video": _bool(node.get("is_video")),
        "width": width,
        "height": height,
        "aspect_ratio": (width / height) if width and height else None,
        "is_verified": _bool(_get(node, "owner", "is_verified")),
        "is_private": _bool(_get(node, "owner", "is_private")),
        "tagged_users": len(_edges(node, "edge_media_to_tagged_user")),
        "sponsored": any(signals) if signals else None,
        "accessibility_caption": _str(node.get("accessibility_caption")),
        "location": _str(_get(node, "location", "name")),
        "caption_length": len(caption),
    }


def rows_to_table(rows: list[dict | None]) -> pa.Table:
    """:func:`parse_post` results (``None`` for a post that was not parsed) as a PARSED_SCHEMA table."""
    cols = {}
    for field in PARSED_SCHEMA:
        vals = [None if r is None else r[field.name] for r in rows]
        mask = np.fromiter((v is None for v in vals), bool, len(vals))
        if pa.types.is_string(field.type):
            cols[field.name] = A.strings(vals)
        elif pa.types.is_list(field.type):
            cols[field.name] = A.string_lists(vals)
        elif pa.types.is_boolean(field.type):
            cols[field.name] = A.booleans(np.fromiter((bool(v) for v in vals), bool, len(vals)), mask)
        else:
            numeric = pa.int64() if pa.types.is_timestamp(field.type) else field.type
            cols[field.name] = A.numbers(np.array([0 if v is None else v for v in vals]), numeric, mask)
    return pa.table(cols).cast(PARSED_SCHEMA)


# -- a block of posts in Arrow (hot path) ---------------------------------------------------------
def _json_schema() -> pa.Schema:
    text_edges = pa.list_(pa.struct([("node", pa.struct([("text", pa.string())]))]))
    any_edges = pa.struct([("edges", pa.list_(pa.struct([])))])
    comments = pa.struct([("count", pa.int64()), ("edges", text_edges)])
    counted = pa.struct([("count", pa.int64())])
    media = [
        ("id", pa.string()), ("shortcode", pa.string()), ("__typename", pa.string()),
        ("edge_media_to_caption", pa.struct([("edges", text_edges)])),
        ("edge_media_preview_like", counted), ("edge_liked_by", counted),
        *((k, comments) for k in COMMENT_KEYS),
        ("taken_at_timestamp", pa.int64()), ("is_video", pa.bool_()),
        ("dimensions", pa.struct([("width", pa.int64()), ("height", pa.int64())])),
        ("owner", pa.struct([("is_verified", pa.bool_()), ("is_private", pa.bool_())])),
        ("edge_media_to_tagged_user", any_edges), ("edge_media_to_sponsor_user", any_edges),
        ("is_ad", pa.bool_()), ("is_paid_partnership", pa.bool_()),
        ("accessibility_caption", pa.string()), ("location", pa.struct([("name", pa.string())])),
    ]
    media_t = pa.struct(media)
    inner = pa.struct([("shortcode_media", media_t)])
    return pa.schema(media + [("graphql", inner), ("data", inner), ("shortcode_media", media_t)])


JSON_SCHEMA = _json_schema()
MEDIA_TYPE = pa.struct([JSON_SCHEMA.field(i) for i in range(JSON_SCHEMA.get_field_index("graphql"))])
LEAF = 32  # blocks this small that the reader rejects are parsed post by post
_ZERO, _FALSE, _NEWLINE = A.scalar(0, pa.int64()), A.scalar(False, pa.bool_()), A.scalar("\n", pa.string())


def _read_block(raws: list[bytes]) -> pa.Table | None:
    """One Arrow JSON read of ``raws`` (one post per line), or None when the reader rejects it.

    Pretty-printed posts break the one-post-per-line framing; JSON allows a newline only as
    whitespace, so the block is read once more with newlines made spaces before giving up.
    """
    blob = b"\n".join(raws)
    table = _read_lines(blob, len(raws))
    if table is None and (b"\r" in blob or blob.count(b"\n") != len(raws) - 1):
        table = _read_lines(b"\n".join(r.replace(b"\n", b" ").replace(b"\r", b" ") for r in raws), len(raws))
    return table


def _read_lines(blob: bytes, rows: int) -> pa.Table | None:
    import pyarrow.json as pj

    try:
        _check_utf8(blob)  # orjson rejects invalid UTF-8 anywhere; the reader only checks kept fields
        table = pj.read_json(pa.BufferReader(blob),
                             read_options=pj.ReadOptions(use_threads=False, block_size=len(blob) + 1),
                             parse_options=pj.ParseOptions(explicit_schema=JSON_SCHEMA, unexpected_field_behavior="ignore"))
    except pa.ArrowException:
        return None
    return table if table.num_rows == rows else None  # a line held two objects, or a post spans lines


def _check_utf8(blob: bytes) -> None:
    """Raise ``ArrowInvalid`` unless ``blob`` is UTF-8 (Arrow's SIMD check: ~50x ``bytes.decode``)."""

    offsets = pa.py_buffer(np.array([0, len(blob)], np.int64))
    pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(blob)]).cast(pa.large_string())


def _first(lists: pa.Array) -> pa.Array:
    """Element 0 of each list, null where the list is null or empty."""
    import pyarrow.compute as pc

    has = A.to_numpy(pc.fill_null(pc.list_value_length(lists), A.scalar(0, pa.int32()))) > 0
    starts = A.to_numpy(lists.offsets)[:-1]
    return lists.values.take(A.numbers(starts, pa.int64(), ~has))


def _nonempty_texts(edges: pa.Array, n: int) -> tuple[pa.Array, "np.ndarray"]:
    """Per row: the non-empty ``node.text`` strings of ``edges`` joined by newlines, and their number."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(edges)
    parents = pc.list_parent_indices(edges)
    texts = pc.struct_field(flat, ["node", "text"]) if len(flat) else pa.nulls(0, pa.string())
    keep = pc.fill_null(pc.greater(pc.utf8_length(texts), _ZERO), _FALSE)
    kept, owners = texts.filter(keep), A.to_numpy(parents.filter(keep))
    counts = np.bincount(owners, minlength=n).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(A.numbers(offsets, pa.int32()), kept), _NEWLINE)
    return joined, counts


def _in_range(arr: pa.Array, bounds: tuple[int, int]) -> pa.Array:
    import pyarrow.compute as pc

    ok = pc.and_(pc.greater_equal(arr, A.scalar(bounds[0], arr.type)), pc.less(arr, A.scalar(bounds[1], arr.type)))
    return pc.if_else(ok, arr, A.scalar(None, arr.type))


def _hidden_counts(counts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Negative counts -> null, and the flag that says so (false where the count is null or >= 0)."""
    import pyarrow.compute as pc

    neg = pc.fill_null(pc.less(counts, _ZERO), _FALSE)
    return pc.if_else(neg, A.scalar(None, pa.int64()), counts), neg


def _columns(table: pa.Table) -> tuple[pa.Table, pa.Array]:
    """PARSED_SCHEMA columns for every row of a reader table, and a mask of rows that are posts."""
    import pyarrow.compute as pc

    t = table.combine_chunks()
    n = t.num_rows
    col = lambda name: t.column(name).chunk(0) if t.column(name).num_chunks else pa.nulls(n, t.schema.field(name).type)  # noqa: E731
    top = pa.StructArray.from_arrays([col(f.name) for f in MEDIA_TYPE], fields=list(MEDIA_TYPE))
    wrapped = [pc.struct_field(col(path[0]), list(path[1:])) if len(path) > 1 else col(path[0]) for path in WRAPPERS]
    media = pc.coalesce(*wrapped, top)
    f = lambda *path: pc.struct_field(media, list(path))  # noqa: E731
    null_str = A.scalar(None, pa.string())

    is_post = pc.or_(pc.or_(pc.is_valid(f("id")), pc.is_valid(f("shortcode"))),
                     pc.or_(pc.or_(pc.is_valid(f("__typename")), pc.is_valid(f("edge_media_to_caption"))),
                            pc.is_valid(f("owner"))))
    caption = pc.fill_null(pc.struct_field(_first(f("edge_media_to_caption", "edges")), ["node", "text"]), A.scalar("", pa.string()))

    source, count, edges = pa.nulls(n, pa.string()), pa.nulls(n, pa.int64()), None
    for key in reversed(COMMENT_KEYS):  # the first present key wins
        block = f(key)
        present = pc.is_valid(block)
        source = pc.if_else(present, A.scalar(key, pa.string()), source)
        count = pc.if_else(present, pc.struct_field(block, ["count"]), count)
        blk_edges = pc.struct_field(block, ["edges"])
        edges = blk_edges if edges is None else pc.if_else(present, blk_edges, edges)
    joined, shown = _nonempty_texts(edges, n)
    comments_text = pc.if_else(pc.is_valid(source), joined, null_str)
    shown = A.numbers(np.where(A.to_numpy(pc.is_valid(source)), shown, 0), pa.int32())

    preview = f("edge_media_preview_like")
    likes = pc.if_else(pc.is_valid(preview), pc.struct_field(preview, ["count"]), f("edge_liked_by", "count"))
    likes, likes_hidden = _hidden_counts(likes)
    count, comments_hidden = _hidden_counts(count)
    ts = _in_range(f("taken_at_timestamp"), (-MAX_TIMESTAMP + 1, MAX_TIMESTAMP))
    width, height = _in_range(f("dimensions", "width"), INT32), _in_range(f("dimensions", "height"), INT32)
    both = pc.and_(pc.not_equal(width, _ZERO), pc.not_equal(height, _ZERO))
    aspect = pc.if_else(both, pc.divide(pc.cast(width, pa.float64()), pc.cast(height, pa.float64())), A.scalar(None, pa.float64()))

    sponsor_edges = f("edge_media_to_sponsor_user", "edges")
    signals = [f("is_ad"), f("is_paid_partnership"), pc.greater(pc.list_value_length(sponsor_edges), A.scalar(0, pa.int32()))]
    any_true = pc.or_(pc.or_(pc.fill_null(signals[0], _FALSE), pc.fill_null(signals[1], _FALSE)), pc.fill_null(signals[2], _FALSE))
    any_known = pc.or_(pc.or_(pc.is_valid(signals[0]), pc.is_valid(signals[1])), pc.is_valid(signals[2]))
    sponsored = pc.if_else(any_known, any_true, A.scalar(None, pa.bool_()))

    captions = caption.to_pylist()
    hashtags = A.string_lists([[h.lower() for h in HASHTAG.findall(c)] if "#" in c else [] for c in captions])
    cols = {
        "media_id": f("id"), "shortcode": f("shortcode"), "typename": f("__typename"),
        "caption": caption, "hashtags": hashtags, "likes": likes, "comments": count,
        "likes_hidden": likes_hidden, "comments_hidden": comments_hidden,
        "comments_text": comments_text, "comments_shown": shown, "comments_source": source,
        "timestamp": pc.multiply(ts, A.scalar(1000, pa.int64())), "is_video": f("is_video"), "width": width, "height": height,
        "aspect_ratio": aspect, "is_verified": f("owner", "is_verified"), "is_private": f("owner", "is_private"),
        "tagged_users": pc.fill_null(pc.list_value_length(f("edge_media_to_tagged_user", "edges")), A.scalar(0, pa.int32())),
        "sponsored": sponsored, "accessibility_caption": f("accessibility_caption"),
        "location": f("location", "name"), "caption_length": pc.utf8_length(caption),
    }
    return pa.table(cols).cast(PARSED_SCHEMA), is_post


def _spec(t: pa.DataType):
    """A reader type as a nested Python spec for :func:`fits_schema` (built once)."""
    if pa.types.is_struct(t):
        return ("struct", {t.field(i).name: _spec(t.field(i).type) for i in range(t.num_fields)})
    if pa.types.is_list(t):
        return ("list", _spec(t.value_type))
    return {pa.string(): str, pa.int64(): int, pa.bool_(): bool}[t]


def _fits(v: Any, spec) -> bool:
    if v is None:
        return True
    if spec is str:
        return type(v) is str
    if spec is int:
        return type(v) is int and INT64[0] <= v < INT64[1]
    if spec is bool:
        return type(v) is bool
    kind, inner = spec
    if kind == "struct":
        if type(v) is not dict:
            return False
        for key, sub in inner.items():
            x = v.get(key)
            if x is not None and not _fits(x, sub):
                return False
        return True
    return type(v) is list and all(_fits(e, inner) for e in v)


_TOP_SPEC = _spec(pa.struct(list(JSON_SCHEMA)))


def fits_schema(obj: Any) -> bool:
    """Whether Arrow's reader, given this decoded post, yields exactly what :func:`parse_post`
    would: every kept field null or of the reader's type (integers within int64), top level an
    object. Posts that do not fit are parsed by the Python reference instead.

    The top level must be an object: Arrow's reader (pyarrow 26) crashes the process on a line
    holding a bare ``null``, so such a post must never reach it."""
    return type(obj) is dict and _fits(obj, _TOP_SPEC)


def screen(raws: list[bytes], types: bool = True) -> tuple[list[int], dict[int, Any], list[tuple[int, str, str]]]:
    """One pass over a block deciding each post's path (see the module docstring).

    Args:
        raws: the posts' bytes.
        types: also check the kept fields' types (:func:`fits_schema`); without, only the top
            level must be an object (what the reader needs not to crash).

    Returns:
        ``(bulk, python, failures)``: indices the Arrow reader takes; ``{index: decoded JSON}`` for
        posts the Python reference parses; ``(index, status, message)`` for posts that failed.
    """
    bulk: list[int] = []
    python: dict[int, Any] = {}
    failures: list[tuple[int, str, str]] = []
    loads = orjson.loads
    for i, raw in enumerate(raws):
        try:
            obj = loads(raw)  # the common case, inlined: not blank, no BOM, valid
        except (orjson.JSONDecodeError, MemoryError):
            try:
                obj = decode(raw)  # the exact reason (empty, BOM, corrupt)
            except PostError as exc:
                failures.append((i, exc.status, str(exc)))
                continue
            python[i] = obj  # valid once its BOM is gone: the reference parses it
            continue
        if fits_schema(obj) if types else type(obj) is dict:
            bulk.append(i)
        else:
            python[i] = obj
    return bulk, python, failures


def parse_posts(raws: list[bytes]) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Parse a block of post files.

    Every post is decoded once by orjson (the definition of valid JSON); the valid objects are
    read by Arrow in one pass. Only when the reader rejects that block (a kept field of another
    type somewhere in it) are its posts checked one by one (:func:`fits_schema`) and the ones that
    do not fit parsed by the Python reference, the rest read by Arrow again: one extra pass,
    never a split-in-halves search.

    Args:
        raws: one bytes object per post file.

    Returns:
        A PARSED_SCHEMA table with one row per input, in input order (all null where the post
        failed), and the failures as ``(index, status, message)`` sorted by index.
    """
    bulk, python, failures = screen(raws, types=False)
    parts: list[pa.Table] = []
    order: list[int] = []
    block = _read_block([raws[i] for i in bulk]) if bulk else None
    if block is not None:
        _accept(block, bulk, parts, order, failures)
    elif bulk:
        fitting = []
        for i in bulk:
            obj = orjson.loads(raws[i])  # valid: decoded above
            if fits_schema(obj):
                fitting.append(i)
            else:
                python[i] = obj
        _parse(raws, fitting, parts, order, failures)
    if python:
        rows: list[dict | None] = []
        for i, obj in python.items():
            try:
                rows.append(parse_post(media(obj)))
            except PostError as exc:
                failures.append((i, exc.status, str(exc)))
                rows.append(None)
            except MemoryError:
                failures.append((i, S.TOO_LARGE, "out of memory parsing the post"))
                rows.append(None)
        parts.append(rows_to_table(rows))
        order.extend(python)
    parsed = pa.concat_tables(parts) if parts else PARSED_SCHEMA.empty_table()
    failed = [i for i, _, _ in failures]
    if len(order) == len(raws) and not failed and order == sorted(order):
        return parsed, []
    where = np.full(len(raws), -1, np.int64)
    where[np.asarray(order, np.int64)] = np.arange(len(order))
    where[failed] = -1
    return A.take_or_null(parsed, where), sorted(failures)


def _accept(block: pa.Table, idx: list[int], parts: list[pa.Table], order: list[int], failures: list) -> None:
    """Columns of a block the reader took; rows that are not posts become ``json_invalid``."""
    table, is_post = _columns(block)
    if not _all_true(is_post):
        for i, ok in zip(idx, is_post.to_pylist()):
            if not ok:
                failures.append((i, S.JSON_INVALID, NOT_A_POST))
    parts.append(table)
    order.extend(idx)


def _parse(raws: list[bytes], idx: list[int], parts: list[pa.Table], order: list[int], failures: list) -> None:
    """Arrow-read the screened posts ``idx`` into ``parts``. Should the reader reject them anyway
    (a JSON oddity the screen does not model, e.g. a duplicated key), split in halves down to
    ``LEAF`` posts, parsed by the reference: a safety net, not the common path."""
    if not idx:
        return
    block = _read_block([raws[i] for i in idx])
    if block is not None:
        _accept(block, idx, parts, order, failures)
        return
    if len(idx) <= LEAF:
        rows: list[dict | None] = []
        for i in idx:
            try:
                rows.append(parse_post(load_post(raws[i])))
            except PostError as exc:
                failures.append((i, exc.status, str(exc)))
                rows.append(None)
        parts.append(rows_to_table(rows))
        order.extend(idx)
        return
    mid = len(idx) // 2
    _parse(raws, idx[:mid], parts, order, failures)
    _parse(raws, idx[mid:], parts, order, failures)


def _all_true(mask: pa.Array) -> bool:
    import pyarrow.compute as pc

    return bool(pc.all(mask).as_py()) if len(mask) else True
