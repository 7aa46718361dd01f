"""Text datasets through the CLI: create, propose, accept, show and export them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.conftest import Run, as_json

SRC = ["Hello world .", "How are you ?", "Thank you .", "Good night .", "See you soon ."]
TGT = ["Hallo Welt .", "Wie geht es dir ?", "Danke .", "Gute Nacht .", "Bis bald ."]


def _lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _ok(run: Run, *args: object) -> object:
    code, out, err = run(*map(str, args), "--json")
    assert code == 0, err
    return as_json(out)


def _refused(run: Run, *args: object) -> str:
    code, out, err = run(*map(str, args))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (code, out, err)
    return lines[0]


@pytest.fixture(scope="module")
def text_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from databright.cli import main

    home = tmp_path_factory.mktemp("texthome")
    for args in (["init", "--accounts", "3"], ["deploy"]):
        try:
            main(["--home", str(home), *args])
        except SystemExit as exc:
            assert not exc.code
    return home


def test_parallel_text_round_trip_and_bad_batches(run: Run, text_home: Path, tmp_path: Path) -> None:
    h = ("--home", text_home)
    seed = tmp_path / "seed"
    _lines(seed / "src-train.txt", SRC[:3])
    _lines(seed / "tgt-train.txt", TGT[:3])
    created = _ok(run, *h, "dataset", "create", "en-de", "--seed", seed, "--from", "opennmt")
    dataset = created["dataset_id"]  # type: ignore[index]
    shown = _ok(run, *h, "dataset", "show", dataset)
    assert shown["kind"] == "text" and shown["metadata"]["paired"] is True  # type: ignore[index]

    batch = tmp_path / "batch"
    _lines(batch / "src-train.txt", SRC[3:])
    _lines(batch / "tgt-train.txt", TGT[3:])
    proposal = _ok(run, *h, "propose", dataset, batch / "src-train.txt", "--from", "opennmt")
    pid = proposal["proposal_id"]  # type: ignore[index]
    _ok(run, *h, "vote", pid, "yes")
    assert _ok(run, *h, "finalize", pid)["status"] == "accepted"  # type: ignore[index]

    out = tmp_path / "export"
    result = _ok(run, *h, "dataset", "export", dataset, out, "--format", "opennmt")
    assert result["items"] == 5  # type: ignore[index]
    assert (out / "src-train.txt").read_text(encoding="utf-8").splitlines() == SRC
    assert (out / "tgt-train.txt").read_text(encoding="utf-8").splitlines() == TGT
    assert not (out / "labels.txt").exists()
    _ok(run, *h, "dataset", "export", dataset, tmp_path / "j", "--format", "jsonl")
    records = [json.loads(line) for line in (tmp_path / "j" / "items.jsonl").read_text().splitlines()]
    assert [(r["source"], r["target"]) for r in records] == list(zip(SRC, TGT, strict=True))
    assert "already holds src-train.txt" in _refused(run, *h, "dataset", "export", dataset, out, "--format",
                                                     "opennmt")

    # The export imports again as the same items: proposing it finds every one a duplicate.
    assert "5 item(s) already in dataset" in _refused(run, *h, "propose", dataset, out, "--from", "opennmt")

    before = len(_ok(run, *h, "proposal", "list"))  # type: ignore[arg-type]
    _lines(batch / "tgt-train.txt", TGT[3:4])
    line = _refused(run, *h, "propose", dataset, batch, "--from", "opennmt")
    assert line == ("error: src-train.txt and tgt-train.txt differ in length: src-train.txt has a line 2, "
                    "tgt-train.txt ends after line 1")
    single = _lines(tmp_path / "single.txt", ["just one text"])
    line = _refused(run, *h, "propose", dataset, single, "--from", "text")
    assert line == f"error: dataset {dataset} holds source/target pairs, but this batch holds single texts"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28 broken\n")
    assert _refused(run, *h, "propose", dataset, bad, "--from", "text") == "error: bad.txt line 2: not valid UTF-8"
    assert len(_ok(run, *h, "proposal", "list")) == before  # type: ignore[arg-type]  # nothing proposed


def test_labelled_text_round_trip_with_labels_file(run: Run, text_home: Path, tmp_path: Path) -> None:
    h = ("--home", text_home)
    texts = ["a lovely film", "dull and long", "\x1b[31mred\x1b[0m and fine", "awful acting"]
    labels = ["pos", "neg", "pos", "neg"]
    seed = _lines(tmp_path / "seed.txt", texts[:2])
    seed_labels = _lines(tmp_path / "seed.labels", labels[:2])
    created = _ok(run, *h, "dataset", "create", "reviews", "--classes", "pos,neg", "--seed", seed,
                  "--labels", seed_labels, "--from", "text")
    dataset = created["dataset_id"]  # type: ignore[index]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                             for t, lab in zip(texts[2:], labels[2:], strict=True)))
    pid = _ok(run, *h, "propose", dataset, batch, "--from", "jsonl")["proposal_id"]  # type: ignore[index]
    code, out, err = run("--home", str(text_home), "proposal", "show", str(pid))
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b[31mred" in out  # the text is shown, its escapes are not obeyed
    _ok(run, *h, "vote", pid, "yes")
    _ok(run, *h, "finalize", pid)
    out_dir = tmp_path / "export"
    _ok(run, *h, "dataset", "export", dataset, out_dir, "--format", "opennmt")
    assert (out_dir / "text.txt").read_text(encoding="utf-8").splitlines() == texts
    assert (out_dir / "labels.txt").read_text().splitlines() == labels

    wrong = _lines(tmp_path / "wrong.csv", ["text,label", "so so,meh"])
    line = _refused(run, *h, "propose", dataset, wrong, "--from", "text-csv")
    assert line.startswith("error: wrong.csv line 2: label 'meh' is not one of the dataset's labels")
    assert "parquet" in _refused(run, *h, "dataset", "export", dataset, tmp_path / "x", "--format", "csv")


def test_evaluator_values_pairs_by_signals_and_labelled_text_by_the_classifier(
    run: Run, text_home: Path, tmp_path: Path
) -> None:
    h = ("--home", text_home)
    seed = tmp_path / "seed"
    _lines(seed / "src-train.txt", SRC[:3])
    _lines(seed / "tgt-train.txt", TGT[:3])
    line = _refused(run, *h, "dataset", "create", "p", "--seed", seed, "--from", "opennmt", "--evaluator", "dev2",
                    "--validation", seed, "--evaluation-required")
    assert "parallel text is valued by duplicate signals" in line
    dataset = _ok(run, *h, "dataset", "create", "pairs", "--seed", seed, "--from", "opennmt", "--evaluator", "dev2",
                  "--evaluation-required")["dataset_id"]  # type: ignore[index]
    batch = tmp_path / "batch"
    _lines(batch / "src-train.txt", [SRC[0], "hello world !", SRC[4]])
    _lines(batch / "tgt-train.txt", [TGT[0], TGT[0], TGT[4]])
    pid = _ok(run, *h, "--account", "dev1", "propose", dataset, batch, "--from", "opennmt",
              "--allow-duplicates")["proposal_id"]  # type: ignore[index]
    _ok(run, *h, "--account", "dev2", "evaluate", pid)
    code, out, err = run("--home", str(text_home), "proposal", "show", str(pid))
    assert code == 0, err
    assert "duplicate signals (no translation model spec yet)" in out
    shown = _ok(run, *h, "proposal", "show", pid)["evaluation"]  # type: ignore[index]
    assert shown["signals"]["exact_duplicates"] == [0] and [n[0] for n in shown["signals"]["near_duplicates"]] == [1]
    assert shown["text_signals"]["novel_items"] == 1 and shown["shares"] > 0

    # Labelled text with a validation split gets the default classifier; its evaluation has a gain.
    texts = ["a lovely film", "great acting and a lovely story", "dull and long", "awful acting , dull story",
             "lovely , great fun", "long and awful"]
    labels = ["pos", "pos", "neg", "neg", "pos", "neg"]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                                  for t, lab in zip(texts[:4], labels[:4], strict=True)))
    val_jsonl = tmp_path / "val.jsonl"
    val_jsonl.write_text('{"text": "lovely great film", "label": "pos"}\n{"text": "dull awful story", "label": "neg"}\n')
    labelled = _ok(run, *h, "dataset", "create", "reviews", "--classes", "pos,neg", "--seed", train_file, "--from",
                   "jsonl", "--validation", val_jsonl, "--evaluator", "dev2")["dataset_id"]  # type: ignore[index]
    meta = _ok(run, *h, "dataset", "show", labelled)["metadata"]  # type: ignore[index]
    assert meta["model_spec"]["input"] == "text" and meta["model_spec"]["text_dim"] == 2048
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for t, lab in zip(texts[4:], labels[4:], strict=True)))
    pid = _ok(run, *h, "--account", "dev1", "propose", labelled, more, "--from", "jsonl")["proposal_id"]  # type: ignore[index]
    _ok(run, *h, "--account", "dev2", "evaluate", pid)
    shown = _ok(run, *h, "proposal", "show", pid)["evaluation"]  # type: ignore[index]
    assert len(shown["scores"]) == 5 and len(shown["signals"]["knn_values"]) == 2
    trained = _ok(run, *h, "train", labelled)
    assert trained["items"] == 4 and 0.0 <= trained["score"] <= 1.0  # type: ignore[index]
