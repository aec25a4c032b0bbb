"""Texts to model batches: tokenise once, sort by token length, pad per batch, keep the GPU fed.

The text stages read a shard in *windows* of posts. A background thread tokenises the next
window (the Rust tokenizer releases the GIL) while the model works on the current one; within a
window the texts are sorted by token length, longest first, so a batch pads to its own longest
text and the first batch shows at once whether the largest one fits in memory. A batch closes at
``batch_size`` texts, at ``max_tokens`` padded tokens, or where the lengths fall away (see
:func:`length_batches`), whichever comes first.

Truncation is recorded, not hidden: a text longer than the model's window is cut to it and
flagged. A text whose every token is unknown to the model (emoji only) is run but not scored:
the model would return the same vector for every such text, which is no feature.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import polars as pl

from .common import clean_text, mostly_non_latin, parsed

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


CHARS_PER_TOKEN = 64  # character budget per token of max_length: texts are cut to it before tokenising


class TextTokenizer:
    """A private copy of a model's fast tokenizer, truncating to ``max_length``, never padding.

    The one truncation rule of the text stages: a text keeps at most ``max_length`` tokens, the
    model's start and end tokens included (the cut text still ends with the end token), and is
    flagged when it lost tokens. The model's own tokenizer instance is left as it was.

    A text longer than ``max_length * CHARS_PER_TOKEN`` characters is cut to that many before it
    is tokenised (and flagged truncated): the model sees only ``max_length`` tokens anyway, and a
    15 MB caption otherwise costs gigabytes and minutes of tokenising. 64 characters a token is
    far above what real text needs (WordPiece and BPE tokens average 3-5 characters; a word longer
    than 100 characters is one unknown token), so the cut changes no kept token of real text.

    Args:
        hf_tokenizer: a transformers *fast* tokenizer.
        max_length: tokens per text.

    Raises:
        TypeError: the tokenizer is not a fast (Rust) tokenizer.
    """

    def __init__(self, hf_tokenizer, max_length: int):
        from tokenizers import Tokenizer

        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(f"{type(hf_tokenizer).__name__} is not a fast tokenizer; the text stages need one")
        self.backend = Tokenizer.from_str(backend.to_str())  # the model's own instance keeps its settings
        self.backend.no_padding()
        self.backend.enable_truncation(max_length)
        self.max_length = max_length
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
        self.special = np.asarray(sorted(set(hf_tokenizer.all_special_ids)), dtype=np.int64)
        self.type_ids = "token_type_ids" in getattr(hf_tokenizer, "model_input_names", ())

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
        """Tokenise ``texts`` in the Rust pool (the GIL is released); over-long texts are cut first.

        Returns:
            ``(ids, lengths, truncated)``: token ids per text (start/end included, at most
            ``max_length``), ``(n,)`` int64 lengths, ``(n,)`` bool True where a text was cut
            (by tokens, or first by the character budget).
        """
        budget = self.max_length * CHARS_PER_TOKEN
        cut = np.fromiter((len(t) > budget for t in texts), dtype=bool, count=len(texts))
        if cut.any():
            texts = [t[:budget] if c else t for t, c in zip(texts, cut)]
        encs = self.backend.encode_batch(list(texts))
        ids = [e.ids for e in encs]
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        truncated = np.fromiter((bool(e.overflowing) for e in encs), dtype=bool, count=len(ids)) | cut
        return ids, lengths, truncated


@dataclass
class Window:
    """A slice of the shard's posts and the texts taken from them."""

    number: int
    posts: pl.DataFrame
    n_texts: int
    owner: np.ndarray  # post row (within the window) of each text
    column: np.ndarray  # which text column each text came from
    non_latin: np.ndarray  # per text: mostly non-Latin letters
    truncated: np.ndarray = field(default=None)
    known: np.ndarray = field(default=None)
    results: np.ndarray | None = None  # filled by the writer, one row per text
    pending: int = 0  # batches not yet written


@dataclass
class TextBatch:
    """One model batch: some of a window's texts, padded to their longest (:func:`pad_batch`)."""

    window: Window
    index: np.ndarray  # positions of the batch's texts in the window
    features: dict[str, Any]  # input_ids, attention_mask (+ token_type_ids): CPU tensors

    def __len__(self) -> int:
        return len(self.index)


PAD_SLACK = 0.2  # a batch takes texts down to 80% of its longest ...
PAD_SLACK_TOKENS = 8  # ... or 8 tokens shorter, whichever allows more


def length_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest texts first, each under both limits.

    A batch also closes where the lengths fall away (below 80% of its longest text, with 8
    tokens of grace): in a full shard the sorted lengths are dense and batches fill up anyway,
    but among the few long texts of the tail, or in a small shard, one batch spanning 230 down
    to 20 tokens would spend most of its time on padding (measured on CPU: 2x the tokens).

    Args:
        lengths: ``(n,)`` int token counts per text.
        batch_size: texts per batch at most.
        max_tokens: padded tokens (texts x longest) per batch at most; a single longer text
            still makes a batch of one.

    Returns:
        Index arrays (int64) into ``lengths``, covering every text once, longest texts first.
    """
    order = np.argsort(-lengths, kind="stable")
    ordered = lengths[order]
    batches, start, n = [], 0, len(order)
    while start < n:
        longest = int(ordered[start])
        size = max(1, min(batch_size, max_tokens // max(longest, 1)))
        floor = longest - max(PAD_SLACK_TOKENS, PAD_SLACK * longest)
        end = start + 1
        while end < min(n, start + size) and ordered[end] >= floor:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(ids: list[list[int]], index: np.ndarray, tok: TextTokenizer, pin: bool) -> dict[str, Any]:
    """The texts ``index`` of ``ids`` as one batch padded to its longest text.

    Args:
        ids: token ids per text (:meth:`TextTokenizer.encode`).
        index: positions of the batch's texts in ``ids``.
        tok: the tokenizer (its pad id, whether the model takes ``token_type_ids``).
        pin: pin the tensors (host -> GPU copies overlap with compute).

    Returns:
        ``{"input_ids", "attention_mask"[, "token_type_ids"]}``: ``(len(index), longest)`` int64
        CPU tensors; the mask is 1 on real tokens.
    """
    import torch

    rows = [ids[i] for i in index]
    width = max(len(r) for r in rows)
    arr = np.full((len(rows), width), tok.pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        arr[j, : len(r)] = r
        mask[j, : len(r)] = 1
    feats = {"input_ids": torch.from_numpy(arr), "attention_mask": torch.from_numpy(mask)}
    if tok.type_ids:
        feats["token_type_ids"] = torch.zeros_like(feats["input_ids"])
    if pin:
        feats = {k: v.pin_memory() for k, v in feats.items()}
    return feats


def _prepare(window: Window, texts: list[str], tok: TextTokenizer, batch_size: int, max_tokens: int,
             pin: bool) -> list[TextBatch]:
    """Tokenise a window's texts and cut them into padded, length-sorted batches (worker thread)."""
    if not texts:
        window.truncated = np.zeros(0, bool)
        window.known = np.zeros(0, bool)
        window.pending = 1
        return [TextBatch(window, np.zeros(0, np.int64), {})]  # still one batch: the window's rows get written
    ids, lengths, truncated = tok.encode(texts)
    window.truncated = truncated
    window.known = np.zeros(len(texts), bool)
    groups = length_batches(lengths, batch_size, max_tokens)
    batches = []
    for index in groups:
        feats = pad_batch(ids, index, tok, pin)
        ids_arr = feats["input_ids"].numpy()
        known = ~np.isin(ids_arr, tok.special) & (feats["attention_mask"].numpy() == 1)
        window.known[index] = known.any(axis=1)
        batches.append(TextBatch(window, index, feats))
    window.pending = len(batches)
    return batches


def _window_texts(number: int, posts: pl.DataFrame, text_columns: Sequence[str]) -> tuple[Window, list[str]]:
    """The non-empty texts of the parsed posts, with where each came from."""
    owners, columns, texts, non_latin = [], [], [], []
    ok = posts.select(parsed().alias("ok"))["ok"]
    for c, name in enumerate(text_columns):
        t = posts.select(pl.when(ok).then(clean_text(pl.col(name))).alias("t"),
                         mostly_non_latin(pl.col(name)).fill_null(False).alias("nl")).with_row_index("row")
        t = t.filter(pl.col("t").is_not_null())
        owners.append(t["row"].to_numpy().astype(np.int64))
        columns.append(np.full(t.height, c, dtype=np.int64))
        non_latin.append(t["nl"].to_numpy().astype(bool))
        texts.extend(t["t"].to_list())
    win = Window(number, posts, len(texts), np.concatenate(owners), np.concatenate(columns), np.concatenate(non_latin))
    return win, texts


def count_texts(posts: pl.DataFrame, text_columns: Sequence[str]) -> int:
    """How many texts :func:`read_windows` yields for ``posts`` (the non-empty texts of parsed
    posts, selected as :func:`_window_texts` does): the total of a text stage's progress."""
    ok = parsed()
    return int(sum(posts.select(pl.when(ok).then(clean_text(pl.col(c))).is_not_null().sum()).item()
                   for c in text_columns))


def read_windows(posts: pl.DataFrame, text_columns: Sequence[str], tok: TextTokenizer, window: int,
                 batch_size: int, max_tokens: int, pin: bool) -> Iterator[TextBatch]:
    """Batches of every window in turn; the next window is tokenised while this one runs.

    Args:
        posts: the shard's posts (``post_id``, ``status``, ``text_columns``); only parsed posts'
            non-blank texts (stripped) are read.
        text_columns: the text columns, each text scored on its own.
        tok: the tokenizer (truncation rule).
        window: posts per window (tokenised and length-sorted together).
        batch_size: texts per batch at most.
        max_tokens: padded tokens per batch at most.
        pin: pin the batches' tensors.

    Returns:
        An iterator of :class:`TextBatch`, each window's in turn, longest texts first; a window
        without texts yields one empty batch (so its rows are still written).
    """
    starts = list(range(0, posts.height, window)) or [0]

    def prepare(k: int) -> list[TextBatch]:
        win, texts = _window_texts(k, posts.slice(starts[k], window), text_columns)
        return _prepare(win, texts, tok, batch_size, max_tokens, pin)

    with ThreadPoolExecutor(1, thread_name_prefix="tokenize") as pool:
        nxt = pool.submit(prepare, 0)
        for k in range(len(starts)):
            batches = nxt.result()
            if k + 1 < len(starts):
                nxt = pool.submit(prepare, k + 1)
            yield from batches


@dataclass
class TextResults:
    """A finished window: per post and text column, the model output and its flags."""

    posts: pl.DataFrame
    values: list[np.ndarray | None]  # per column: [n_posts, ...] model outputs (rows not scored: garbage)
    scored: list[np.ndarray]  # per column: bool per post
    truncated: list[np.ndarray]
    non_latin: list[np.ndarray]


class WindowWriter:
    """Collects batch outputs per window; hands each finished window to ``emit`` in post order."""

    def __init__(self, n_columns: int, emit: Callable[[TextResults], None]):
        self.n_columns = n_columns
        self.emit = emit

    def write(self, batch: TextBatch, output: np.ndarray | None) -> None:
        """Keep ``output`` (``(len(batch), ...)`` rows, or None for an empty batch) in the window's
        results; when it was the window's last batch, emit the window."""
        win = batch.window
        if output is not None and len(batch):
            if win.results is None:
                win.results = np.zeros((win.n_texts, *output.shape[1:]), dtype=output.dtype)
            win.results[batch.index] = output
        win.pending -= 1
        if win.pending == 0:
            self.emit(self._finish(win))

    def _finish(self, win: Window) -> TextResults:
        n = win.posts.height
        values, scored, truncated, non_latin = [], [], [], []
        for c in range(self.n_columns):
            sel = win.column == c
            rows = win.owner[sel]
            s = np.zeros(n, bool)
            s[rows] = win.known[sel]
            tr = np.zeros(n, bool)
            tr[rows] = win.truncated[sel]
            nl = np.zeros(n, bool)
            nl[rows] = win.non_latin[sel]
            v = None
            if win.results is not None:
                v = np.zeros((n, *win.results.shape[1:]), dtype=win.results.dtype)
                v[rows] = win.results[sel]
            values.append(v)
            scored.append(s)
            truncated.append(tr)
            non_latin.append(nl)
        win.results = None  # free the window
        return TextResults(win.posts, values, scored, truncated, non_latin)


def text_reader(posts: pl.DataFrame, text_columns: Sequence[str], tok: TextTokenizer, cfg,
                pin: bool) -> Iterator[TextBatch]:
    """The reader of a text stage: :func:`read_windows` sized by the stage's config.

    Args:
        posts: the shard's posts (``post_id``, ``status`` and ``text_columns``).
        text_columns: the columns whose texts the model reads, each scored on its own.
        tok: the model's tokenizer, truncating at the stage's limit.
        cfg: the stage's :class:`~affectflow.features.config.TextStageConfig` (``window``,
            ``batch_size``, ``max_tokens``).
        pin: pin the batches' memory (a GPU stage).

    Returns:
        An iterator of :class:`TextBatch` (each window yields at least one, maybe empty).
    """
    return read_windows(posts, text_columns, tok, cfg.window, cfg.batch_size, cfg.max_tokens, pin)


def text_mapper(infer: Callable[[dict], np.ndarray]) -> Callable[[TextBatch], np.ndarray | None]:
    """The mapper of a text stage: ``infer`` (padded token tensors -> ``(n, ...)`` numpy) on a
    batch's features; None for the empty batch of a window without texts."""
    return lambda b: infer(b.features) if len(b) else None


class TextTableWriter(WindowWriter):
    """The writer of a text stage: each finished window, in post order, becomes a table
    (``to_table``) appended to ``writer``; status counts are kept in :attr:`counts`."""

    def __init__(self, writer, n_columns: int, to_table: Callable[[TextResults], "pa.Table"]):
        super().__init__(n_columns, self._append)
        self.writer, self.to_table = writer, to_table
        self.counts: dict[str, int] = {}

    def _append(self, res: TextResults) -> None:
        table = self.to_table(res)
        for s, n in pl.from_arrow(table.select(["status"])).group_by("status").len().iter_rows():
            self.counts[s] = self.counts.get(s, 0) + n
        self.writer.write(table)
