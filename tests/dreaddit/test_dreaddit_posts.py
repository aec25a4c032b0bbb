"""Reading Dreaddit: by column name, every quirk, every row kept (faults labelled), a fair split."""

import csv
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from affectflow import status as S
from affectflow.dreaddit.config import validated
from affectflow.dreaddit.posts import DreadditFormatError, assign_split, build_posts, read_dreaddit_csvs, shard_bounds
from affectflow.tables import COLUMNS, DREADDIT_POSTS

REAL = Path("/work/shared/data/dreaddit")


def _cfg(train, test, **split):
    return validated({"results": "unused", "dreaddit": {"train": str(train), "test": str(test), "split": split}})


@pytest.fixture(scope="module")
def sample_posts(sample_dir):
    dd = sample_dir / "dreaddit"
    return read_dreaddit_csvs(_cfg(dd / "dreaddit-train.csv", dd / "dreaddit-test.csv"))


def _planted(sample_dir):
    return json.loads((sample_dir / "SAMPLE.json").read_text())["dreaddit"]["planted"]


def test_every_record_kept_once_with_unique_post_id(sample_dir, sample_posts):
    posts, summary = sample_posts
    with open(sample_dir / "dreaddit" / "dreaddit-train.csv", newline="") as fh:
        n_train = sum(1 for _ in csv.reader(fh)) - 1
    with open(sample_dir / "dreaddit" / "dreaddit-test.csv", newline="") as fh:
        n_test = sum(1 for _ in csv.reader(fh)) - 1
    assert posts.height == n_train + n_test == summary["rows"]
    assert posts["post_id"].is_unique().all()
    assert sum(summary["by_status"].values()) == posts.height
    assert summary["faults"] == posts.filter(pl.col("status") != S.OK).height > 0


def test_planted_faults_are_labelled_with_file_and_line(sample_dir, sample_posts):
    posts, summary = sample_posts
    planted = _planted(sample_dir)
    by_id = {(r["official_split"], r["dreaddit_id"]): r for r in posts.to_dicts() if r["dreaddit_id"] is not None}
    for status in ("label_invalid", "text_missing", "feature_invalid"):
        for split, rid in planted[status]:
            row = by_id[(split, rid)]
            assert row["status"] == status, (status, row["status"], row["error"])
            assert f"dreaddit-{split}.csv:{row['source_line']}" in row["error"]
    assert all(by_id[(s, i)]["label"] is None for s, i in planted["label_invalid"])
    assert all(by_id[(s, i)]["text"] is None for s, i in planted["text_missing"])
    assert by_id[tuple(planted["feature_invalid"][0])]["lex_liwc_Tone"] is None

    (split, rid), = planted["duplicate_id"]
    dup = posts.filter((pl.col("dreaddit_id") == rid) | pl.col("post_id").str.starts_with(f"dreaddit-{split}-line"))
    assert sorted(dup["status"].to_list()) == [S.DUPLICATE_ID, S.OK]
    later = dup.filter(pl.col("status") == S.DUPLICATE_ID).row(0, named=True)
    assert later["post_id"] == f"dreaddit-{split}-line{later['source_line']}" and f"id {rid} already used" in later["error"]

    malformed = posts.filter(pl.col("status") == S.ROW_MALFORMED)
    assert malformed.height == len(planted["row_malformed"]) == 1
    row = malformed.row(0, named=True)
    assert row["text"] is None and row["label"] is None and "fields, header has 116" in row["error"]
    listed = {r["post_id"] for r in summary["fault_rows"]}
    assert set(posts.filter(pl.col("status") != S.OK)["post_id"]) == listed


def test_quirks_test_column_order_float_timestamps_ranges_and_newlines(sample_dir, sample_posts):
    posts, _ = sample_posts
    header = (sample_dir / "dreaddit" / "dreaddit-test.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "id" and sorted(header) == sorted(COLUMNS)  # the quirk is really in the sample
    ok = posts.filter(pl.col("status") == S.OK)
    assert ok["social_timestamp"].dtype == pl.Int64 and ok["social_timestamp"].null_count() == 0
    test_ts = ok.filter(pl.col("official_split") == "test")["social_timestamp"]
    assert test_ts.min() > 1_500_000_000
    assert ok["sentence_start"].null_count() == 0 and (ok["sentence_end"] - ok["sentence_start"] == 5).all()
    raw = {r["id"]: r for r in csv.DictReader(open(sample_dir / "dreaddit" / "dreaddit-train.csv", newline=""))}
    multiline = ok.filter(pl.col("text").str.contains("\n"))
    assert multiline.height > 0
    for r in multiline.iter_rows(named=True):
        if r["official_split"] == "train":
            assert r["text"] == raw[str(r["dreaddit_id"])]["text"]  # quotes, commas, newlines verbatim


def test_texts_in_both_files_are_flagged_not_dropped(sample_dir, sample_posts):
    posts, summary = sample_posts
    pairs = _planted(sample_dir)["in_both_files"]
    flagged = posts.filter(pl.col("in_both_files"))
    assert sorted(zip(flagged["official_split"], flagged["dreaddit_id"])) == sorted(tuple(p) for p in pairs)
    assert summary["in_both_files"] == 2 and flagged["duplicate_text"].all()


def test_missing_required_column_fails_naming_the_file(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("subreddit,post_id,text\nptsd,abc,hello\n")
    with pytest.raises(DreadditFormatError, match=r"train\.csv.*\['id', 'label'\]"):
        read_dreaddit_csvs(_cfg(bad, bad))


def test_unterminated_quote_fails_naming_file_and_line(tmp_path):
    bad = tmp_path / "test.csv"
    bad.write_text("id,text,label\n1,fine,0\n2,\"never closed,1\n")
    with pytest.raises(DreadditFormatError, match=r"test\.csv:3"):
        read_dreaddit_csvs(_cfg(bad, bad))


def test_split_is_seeded_stratified_and_keeps_groups_together(sample_posts):
    posts, _ = sample_posts
    train = posts.filter(pl.col("official_split") == "train")
    again = assign_split(posts, 0.1, 0, True)
    assert again.to_list() == posts["split"].to_list()  # deterministic
    assert assign_split(posts, 0.1, 1, True).to_list() != posts["split"].to_list()  # and seeded
    assert (posts.filter(pl.col("official_split") == "test")["split"] == "test").all()
    assert posts.filter(pl.col("split") == "val")["label"].null_count() == 0  # unlabelled rows stay in train
    # a Reddit post shared by several rows never straddles train and val
    grouped = posts.with_columns(pl.Series("reddit_post_id", ["p%d" % (i // 3) for i in range(posts.height)]))
    split = assign_split(grouped, 0.3, 0, True)
    sides = grouped.with_columns(split).filter(pl.col("official_split") == "train").group_by("reddit_post_id").agg(
        pl.col("split").filter(pl.col("label").is_not_null()).n_unique().alias("n"))
    assert sides["n"].max() == 1
    assert train.filter(pl.col("split") == "val").height > 0


def test_posts_file_matches_contract_and_shards_partition_it(sample_dir, tmp_path):
    dd = sample_dir / "dreaddit"
    cfg = _cfg(dd / "dreaddit-train.csv", dd / "dreaddit-test.csv")
    out = tmp_path / "posts" / "posts.parquet"
    build_posts(cfg, out, tmp_path / "posts_summary.json")
    assert pq.read_schema(out).remove_metadata().equals(DREADDIT_POSTS.remove_metadata())
    n = duckdb.sql(f"SELECT count(*), count(DISTINCT post_id) FROM '{tmp_path}/posts/*.parquet'").fetchall()[0]
    assert n[0] == n[1] == pl.read_parquet(out).height
    bounds = [shard_bounds(n[0], k, 7) for k in range(7)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n[0] and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@pytest.mark.skipif(not (REAL / "dreaddit-train.csv").is_file(), reason="the real Dreaddit copy is not here")
def test_real_dreaddit_reads_clean():
    posts, summary = read_dreaddit_csvs(_cfg(REAL / "dreaddit-train.csv", REAL / "dreaddit-test.csv"))
    assert summary["files"]["train"]["rows"] == 2838 and summary["files"]["test"]["rows"] == 715
    assert summary["by_status"] == {"ok": 3553}
    assert summary["in_both_files"] == 6  # three texts, each in both files
    assert summary["confidence_zero"] == 98
    assert posts.filter(pl.col("official_split") == "train")["label"].sum() == 1488
    rate = {s: posts.filter(pl.col("split") == s)["label"].mean() for s in ("train", "val")}
    assert abs(rate["train"] - rate["val"]) < 0.02
    train_posts = set(posts.filter(pl.col("split") == "train")["reddit_post_id"])
    assert not train_posts & set(posts.filter(pl.col("split") == "val")["reddit_post_id"])
