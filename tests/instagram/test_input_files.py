"""Input files are checked for the structure they claim (issue kind 4): header lines, field counts,
emptiness, duplicate rows and tabs inside names, with errors naming the file and line."""

from __future__ import annotations

import pytest

from affectflow.instagram.plan import read_influencers, read_mapping
from affectflow.io.tsv import InputFileError

MAP_HEADER = "influencer_name\tJSON_PostMetadata_file_name\tImage_file_name"
INF_HEADER = "Username\tCategory\t#Followers\t#Followees\t#Posts"
RULE = "=" * 40


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("first", ["a\t1.info\t['1.jpg']", "a\t1.info", "a\tx\t[]", "\ufeffa\t1.info\t['1.jpg']"])
def test_mapping_without_its_header_is_refused_naming_line_1(tmp_path, first):
    path = _write(tmp_path, "mapping.txt", [first, "b\t2.info\t['2.jpg']"])
    with pytest.raises(InputFileError, match=rf"{path}:1: the header line is missing: line 1 is a data row"):
        read_mapping(path)


@pytest.mark.parametrize("lines,words", [
    ([], "the file is empty"),
    (["", "   "], "the file is empty"),
    ([MAP_HEADER], "no data rows after the header line"),
    ([MAP_HEADER, "", "  "], "no data rows"),
    (["", MAP_HEADER, "a\t1.info\t[]"], ":1: line 1 is blank"),
    (["influencer_name\tJSON_PostMetadata_file_name", "a\t1.info\t[]"], ":1: the header has 2 tab-separated fields; expected"),
])
def test_mapping_structure_errors(tmp_path, lines, words):
    path = _write(tmp_path, "mapping.txt", lines) if lines else (tmp_path / "mapping.txt")
    if not lines:
        path.write_bytes(b"")
    with pytest.raises(InputFileError, match=words):
        read_mapping(path)


def test_mapping_with_its_header_keeps_line_2(tmp_path):
    path = _write(tmp_path, "mapping.txt", ["\ufeff" + MAP_HEADER, "a\t1.info\t['1.jpg']", "b\t2.info\t['2.jpg']"])
    df, counts = read_mapping(path)
    assert sorted(df["post_id"]) == ["a-1", "b-2"] and counts["rows"] == 2


def test_a_tab_inside_a_username_is_a_malformed_row_not_a_post(tmp_path):
    path = _write(tmp_path, "mapping.txt", [MAP_HEADER, "a\t1.info\t['1.jpg']", "bad\tname\t2.info\t['2.jpg']",
                                             "c\t3.info\t['3.jpg']"])
    df, counts = read_mapping(path)
    assert sorted(df["post_id"]) == ["a-1", "c-3"]  # no post "bad-name", nothing keyed on a split name
    assert counts["unkeyable_rows"] == 1 and any(e.startswith(f"{path}:3: ") for e in counts["malformed_examples"])


def test_influencers_without_header_are_refused(tmp_path):
    path = _write(tmp_path, "influencers.txt", [RULE, "ann\tfood\t1,234\t10\t300"])
    read_influencers(_write(tmp_path, "ok.txt", [INF_HEADER, RULE, "ann\tfood\t1,234\t10\t300"]))
    with pytest.raises(InputFileError, match="the header has 1 tab-separated fields"):
        read_influencers(path)
    path = _write(tmp_path, "influencers.txt", ["ann\tfood\t1,234\t10\t300", "bob\tpet\t99\t1\t2"])
    with pytest.raises(InputFileError, match=rf"{path}:1: the header line is missing"):
        read_influencers(path)
    with pytest.raises(InputFileError, match="no data rows"):
        read_influencers(_write(tmp_path, "empty.txt", [INF_HEADER, RULE]))


def test_influencer_duplicates_and_tabs_are_counted(tmp_path):
    path = _write(tmp_path, "influencers.txt", [
        INF_HEADER, RULE,
        "ann\tfood\t1,234\t10\t300",
        "ann\tfood\t1,234\t10\t300",  # 4: the same row again
        "ann\tpet\t77\t1\t2",  # 5: same name, other values: the first row wins
        "bo\tb\tpet\t99\t1\t2",  # 6: a tab inside the username
        "cat\tpet\t5\t1\t2",
    ])
    df, counts = read_influencers(path)
    assert df.sort("username").rows() == [("ann", "food", 1234), ("cat", "pet", 5)]
    assert counts["duplicate_rows"] == 1 and counts["conflicting_rows"] == 1 and counts["malformed_rows"] == 1
    assert counts["malformed_examples"][0].startswith(f"{path}:6: ")
