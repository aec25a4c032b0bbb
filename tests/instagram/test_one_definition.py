"""One definition of every value (issue: every fault stays with its record, kind 3): the bulk Arrow
path and the Python reference accept, reject and fill exactly the same, a post's row does not
depend on its neighbours, and ingesting one archive at 1, 2, 3 and 7 shards gives the same rows."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hostile import MUTATIONS, clean_posts, write_dataset

from affectflow import config as C
from affectflow import status as S
from affectflow.instagram.ingest import ingest_shard, summarize
from affectflow.instagram.plan import plan
from affectflow.instagram.post_parse import PostError, load_post, parse_post, parse_posts, rows_to_table


def reference(raw: bytes) -> tuple[str, dict | None]:
    """The Python reference's verdict and row for one post."""
    try:
        row = parse_post(load_post(raw))
    except PostError as exc:
        return exc.status, None
    return S.OK, rows_to_table([row]).to_pylist()[0]


def verdicts(raws: list[bytes]) -> list[tuple[str, dict | None]]:
    table, failures = parse_posts(raws)
    status = {i: st for i, st, _ in failures}
    rows = table.to_pylist()
    return [(status.get(i, S.OK), None if i in status else rows[i]) for i in range(len(raws))]


@pytest.fixture(scope="module")
def corpus():
    """Every mutation applied to three different posts, interleaved with clean ones."""
    base = [raw for _, raw in clean_posts(60, seed=3)]
    raws, names = [], []
    for j, (name, mutate) in enumerate(MUTATIONS.items()):
        for k in range(3):
            raws.append(mutate(base[(3 * j + k) % len(base)]))
            names.append(name)
            raws.append(base[(5 * j + k) % len(base)])
            names.append("clean")
    return names, raws


def test_bulk_and_reference_agree_on_a_mutated_corpus(corpus):
    names, raws = corpus
    got = verdicts(raws)
    for name, raw, (status, row) in zip(names, raws, got):
        assert (status, row) == reference(raw), name
    # the corpus exercises both sides of the definition
    assert {st for st, _ in got} >= {S.OK, S.JSON_CORRUPT, S.JSON_EMPTY, S.JSON_INVALID}


def test_a_posts_row_does_not_depend_on_its_neighbours(corpus):
    names, raws = corpus
    together = verdicts(raws)
    for i, raw in enumerate(raws):
        assert verdicts([raw])[0] == together[i], names[i]
    # and in another order, in blocks of another size
    order = list(range(len(raws)))[::-1]
    shuffled = verdicts([raws[i] for i in order])
    assert [shuffled[k] for k in sorted(range(len(order)), key=lambda k: order[k])] == together


def test_bom_is_ignored_on_every_path():
    raw = clean_posts(1)[0][1]
    ref = reference(raw)
    assert ref[0] == S.OK
    for block in ([b"\xef\xbb\xbf" + raw], [raw, b"\xef\xbb\xbf" + raw], [b"\xef\xbb\xbf" + raw] + [raw] * 40):
        i = 0 if len(block) != 2 else 1
        assert verdicts(block)[i] == ref


@pytest.mark.parametrize("value,likes,hidden", [(b"-1", None, True), (b"-7", None, True), (b"0", 0, False), (b"12", 12, False)])
def test_negative_counts_are_hidden_not_values(value, likes, hidden):
    raw = MUTATIONS["likes_neg"](clean_posts(1)[0][1]).replace(b"-1", value)
    comments_neg = raw.replace(b'"edge_media_to_comment": {"count": ', b'"edge_media_to_comment": {"count": -').replace(
        b'"edge_media_to_parent_comment": {"count": ', b'"edge_media_to_parent_comment": {"count": -')
    for block in ([raw], [raw, clean_posts(1)[0][1]], [b"{", raw]):
        status, row = verdicts(block)[block.index(raw)]
        assert status == S.OK and row["likes"] == likes and row["likes_hidden"] is hidden
    status, row = verdicts([comments_neg])[0]
    assert row["comments"] is None and row["comments_hidden"] is True


def _ingest(data, work, shards: int) -> tuple[pl.DataFrame, dict]:
    cfg = C.validate({"results": str(work), "instagram": {"root": str(data), "shards": shards, "row_group_rows": 100}})
    work.mkdir(parents=True, exist_ok=True)
    plan(cfg, work / "p.parquet", work / "i.parquet", work / "p.json")
    outs = [work / f"shard-{s:05d}.parquet" for s in range(shards)]
    for s, out in enumerate(outs):
        ingest_shard(cfg, work / "p.parquet", work / "p.json", s, out)
    summary = summarize(work / "p.json", outs, work / "ingest_summary.json")
    return pl.read_parquet(outs).drop("shard").sort("post_id"), summary


def test_same_rows_at_1_2_3_and_7_shards(tmp_path):
    posts = clean_posts(150, seed=7)
    hostile = []
    for j, mutate in enumerate(MUTATIONS.values()):
        for k in range(2):
            media_id, raw = posts[(7 * j + 3 * k) % 150]
            hostile.append((f"{media_id}{j:02d}{k}", mutate(raw)))
    mixed = [p for pair in zip(posts, hostile + posts[: 150 - len(hostile)]) for p in pair][: 150 + len(hostile)]
    data = write_dataset(tmp_path / "ds", mixed, split_size="64k")
    results = {n: _ingest(data, tmp_path / f"s{n}", n) for n in (1, 2, 3, 7)}
    first, summary = results[1]
    assert first.height == len({m for m, _ in mixed})
    for n, (rows, s) in results.items():
        assert rows.equals(first, null_equal=True), n
        assert s["by_status"] == summary["by_status"] and s["likes_hidden"] == summary["likes_hidden"]
    # and the values are the definition's, not merely stable
    by_id = {r["post_id"]: r for r in first.to_dicts()}
    for media_id, raw in hostile:
        row = by_id[f"00001_mossfit-{media_id}"]
        status, ref = reference(raw)
        assert row["status"] == status, (media_id, row["error"])
        if ref is not None:
            assert {k: row[k] for k in ("likes", "likes_hidden", "caption", "media_id")} == \
                {k: ref[k] for k in ("likes", "likes_hidden", "caption", "media_id")}
    assert summary["likes_hidden"] == sum(1 for r in by_id.values() if r["likes_hidden"]) >= 4
    assert summary["by_status"][S.OK] >= 150
    assert json.loads((tmp_path / "s7" / "ingest_summary.json").read_text())["likes_hidden"] == summary["likes_hidden"]


@pytest.mark.parametrize("bad,reads", [("truncated", 1), ("empty", 1), ("bom", 1), ("likes_float", 2), ("id_number", 2)])
def test_faults_are_isolated_in_one_pass(monkeypatch, bad, reads):
    """Faults must not slow the healthy posts: corrupt posts never reach the bulk reader, and
    type oddities cost one more read of the block, not a split-in-halves search."""
    from affectflow.instagram import post_parse as P

    calls = []
    real = P._read_block
    monkeypatch.setattr(P, "_read_block", lambda raws: calls.append(len(raws)) or real(raws))
    raws = [raw for _, raw in clean_posts(300, seed=11)]
    for i in range(0, 300, 30):  # 10 faulty posts spread over the block
        raws[i] = MUTATIONS[bad](raws[i])
    got = verdicts(raws)
    assert len(calls) == reads
    assert [g for i, g in enumerate(got) if i % 30] == [reference(r) for i, r in enumerate(raws) if i % 30]
