"""Text items and their importers, over small real files built here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from databright.storage import (
    LocalBlobStore,
    ManifestError,
    cid_of,
    decode_text,
    encode_pair,
    encode_text,
    import_items,
    manifest_from_source,
)

SOURCES = ["Hello world .", "How are you ?", "Thank you very much ."]
TARGETS = ["Hallo Welt .", "Wie geht es dir ?", "Vielen Dank ."]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _opennmt(folder: Path, split: str = "train") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_lines(folder / f"src-{split}.txt", SOURCES)
    _write_lines(folder / f"tgt-{split}.txt", TARGETS)
    return folder


def test_blob_format_is_plain_utf8_and_pairs_join_with_nul() -> None:
    assert encode_text("grüße", "x") == "grüße".encode()
    assert cid_of(encode_text("grüße", "x")) == cid_of("grüße".encode())  # the CID of the bytes themselves
    pair = encode_pair("a b", "c d", "x")
    assert pair == b"a b\0c d"
    assert decode_text(pair) == ("a b", "c d")
    assert decode_text(b"only one") == ("only one", None)


@pytest.mark.parametrize(
    ("blob", "message"),
    [(b"\xff\xfe", "invalid UTF-8"), (b"a\0b\0c", "more than one NUL"), (b"", "empty"), (b"a\0 ", "empty")],
)
def test_decoding_refuses_what_is_not_a_text_item(blob: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        decode_text(blob)


def test_encoding_refuses_nul_empty_and_oversized_text() -> None:
    with pytest.raises(ManifestError, match="x: the text holds a NUL"):
        encode_text("a\0b", "x")
    with pytest.raises(ManifestError, match="x: empty text"):
        encode_text("  ", "x")
    with pytest.raises(ManifestError, match="more than 65536"):
        encode_text("a" * 65537, "x")
    with pytest.raises(ManifestError, match="x: the text is not valid Unicode"):
        encode_text("\ud800", "x")


def test_plain_text_with_a_line_aligned_labels_file(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "reviews.txt", ["good film", "", "bad film\r"])
    labels = _write_lines(tmp_path / "reviews.labels", ["pos", "", "neg"])
    items = list(import_items(source, "text", labels=labels))
    assert [(i.data, i.label, i.metadata) for i in items] == [
        (b"good film", "pos", {"line": 1}), (b"bad film", "neg", {"line": 3})]  # blank line skipped, CRLF cut
    unlabelled = list(import_items(source, "text"))
    assert [i.label for i in unlabelled] == ["", ""]


def test_plain_text_errors_name_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.txt"
    source.write_bytes(b"fine\nbroken \xff byte\n")
    with pytest.raises(ManifestError, match=r"^bad.txt line 2: not valid UTF-8$"):
        list(import_items(source, "text"))
    source.write_bytes(b"fine\nnul\0here\n")
    with pytest.raises(ManifestError, match=r"^bad.txt line 2: the text holds a NUL character$"):
        list(import_items(source, "text"))
    short = _write_lines(tmp_path / "short.labels", ["a"])
    source.write_bytes(b"one\ntwo\n")
    with pytest.raises(ManifestError, match=r"short.labels line 2: no label"):
        list(import_items(source, "text", labels=short))
    long = _write_lines(tmp_path / "long.labels", ["a", "b", "c"])
    with pytest.raises(ManifestError, match=r"bad.txt has 2 lines but long.labels has 3"):
        list(import_items(source, "text", labels=long))


def test_opennmt_folder_and_src_file(tmp_path: Path) -> None:
    folder = _opennmt(tmp_path / "data")
    items = list(import_items(folder, "opennmt"))
    assert [decode_text(i.data) for i in items] == list(zip(SOURCES, TARGETS, strict=True))
    assert [i.metadata["line"] for i in items] == [1, 2, 3]
    _opennmt(folder, "val")
    assert len(list(import_items(folder, "opennmt", split="val"))) == 3
    assert [i.data for i in import_items(folder / "src-train.txt", "opennmt")] == [i.data for i in items]


def test_opennmt_refuses_misaligned_files(tmp_path: Path) -> None:
    folder = _opennmt(tmp_path / "data")
    _write_lines(folder / "tgt-train.txt", TARGETS[:2])
    with pytest.raises(ManifestError, match=r"src-train.txt and tgt-train.txt differ in length: src-train.txt has "
                                            r"a line 3, tgt-train.txt ends after line 2"):
        list(import_items(folder, "opennmt"))
    _write_lines(folder / "tgt-train.txt", [TARGETS[0], "", TARGETS[2]])
    with pytest.raises(ManifestError, match=r"line 2 \(target\): empty text"):
        list(import_items(folder, "opennmt"))
    with pytest.raises(ManifestError, match="no OpenNMT file"):
        list(import_items(folder, "opennmt", split="test"))


def test_jsonl_texts_and_pairs(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a cat", "label": "animal"}\n\n{"text": "a car", "label": 3}\n')
    items = list(import_items(path, "jsonl"))
    assert [(i.data, i.label) for i in items] == [(b"a cat", "animal"), (b"a car", "3")]
    path.write_text(json.dumps({"source": "ja", "target": "yes"}) + "\n")
    assert [decode_text(i.data) for i in import_items(path, "jsonl")] == [("ja", "yes")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "a"}', '{"source": "b", "target": "c"}'], "line 2: the records before hold single texts"),
        (['{"text": 5}'], "line 1: 'text' must be a string, got int"),
        (['{"source": "b"}'], "line 1: 'target' must be a string, got NoneType"),
        (["[1, 2]"], "line 1: expected a JSON object"),
        (["{nope"], "line 1: invalid JSON"),
        (['{"text": "a\\u0000b"}'], "line 1: the text holds a NUL character"),
        (['{"text": "a", "label": [1]}'], "line 1: 'label' must be a string or an integer"),
    ],
)
def test_jsonl_errors(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ManifestError, match=f"^bad.jsonl {message}"):
        list(import_items(path, "jsonl"))


def test_csv_texts_pairs_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerows([["label", "text"], ["pos", "good, really"], ["neg", "two\nlines"]])
    items = list(import_items(path, "text-csv"))
    assert [(i.data, i.label, i.metadata) for i in items] == [
        (b"good, really", "pos", {"line": 2}), (b"two\nlines", "neg", {"line": 4})]
    path.write_text("source,target\nja,yes\n")
    assert [decode_text(i.data) for i in import_items(path, "text-csv")] == [("ja", "yes")]
    path.write_text("words,label\nhi,a\n")
    with pytest.raises(ManifestError, match="data.csv: expected a header with a 'text' column"):
        list(import_items(path, "text-csv"))
    path.write_bytes(b"text\nok\nbad \xff\n")
    with pytest.raises(ManifestError, match="data.csv line 3: not valid UTF-8"):
        list(import_items(path, "text-csv"))
    path.write_text("text,label\nok,a,extra\n")
    with pytest.raises(ManifestError, match="data.csv line 2: 2 columns expected"):
        list(import_items(path, "text-csv"))


def test_labels_file_only_for_line_formats(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.jsonl", ['{"text": "a"}'])
    with pytest.raises(ManifestError, match="--labels is for text and opennmt"):
        list(import_items(path, "jsonl", labels=path))


def test_manifest_of_a_text_source_is_stable(tmp_path: Path) -> None:
    folder = _opennmt(tmp_path / "data")
    first = manifest_from_source(LocalBlobStore(tmp_path / "a"), folder, "opennmt")
    again = manifest_from_source(LocalBlobStore(tmp_path / "b"), folder, "opennmt")
    assert first[1] == again[1]  # same files, same manifest CID, in any store
    store = LocalBlobStore(tmp_path / "a")
    assert [decode_text(store.get(i.cid)) for i in first[0]] == list(zip(SOURCES, TARGETS, strict=True))
