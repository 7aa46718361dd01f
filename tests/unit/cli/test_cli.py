"""The CLI on the embedded chain: happy paths, JSON output and bad input.

Every bad input must give one clear line on stderr, a non-zero exit code and
leave the chain and the index exactly as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.unit.cli.conftest import Run, as_json, tables


def _proposal_count(run: Run, home: Path) -> int:
    code, out, _ = run("--home", home, "proposal", "list", "--json")
    assert code == 0
    return len(as_json(out)["proposals"])  # type: ignore[index,arg-type]


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_propose_vote_finalize_and_json(run: Run, market_home: Path, tmp_path: Path) -> None:
    _, batch = tables(tmp_path)
    code, out, err = run("--home", market_home, "propose", "1", batch, "--json")
    assert code == 0, err
    proposal = as_json(out)
    assert proposal["items"] == 6 and proposal["duplicates"] == 0  # type: ignore[index]
    pid = str(proposal["proposal_id"])  # type: ignore[index]
    code, out, err = run("--home", market_home, "vote", pid, "yes", "--json")
    assert code == 0, err
    code, out, err = run("--home", market_home, "finalize", pid, "--json")
    assert code == 0, err
    assert as_json(out)["status"] == "accepted"  # type: ignore[index]
    code, out, _ = run("--home", market_home, "dataset", "show", "1", "--json")
    shown = as_json(out)
    assert shown["accepted_items"] == 12  # type: ignore[index]
    assert len(shown["shareholders"]) == 1  # type: ignore[index]
    # Bonds come back as a claim (a contract that refuses ether cannot block finalize).
    code, out, err = run("--home", market_home, "refund", "--json")
    assert code == 0, err
    assert as_json(out)["amount_wei"] == 2 * 10**16  # type: ignore[index]  # the seed's bond and this one
    code, _, err = run("--home", market_home, "refund")
    assert code == 1 and "no bond refund" in _error_line(err)


def test_unknown_dataset_suggests_and_changes_nothing(run: Run, market_home: Path) -> None:
    code, _, err = run("--home", market_home, "dataset", "show", "2")
    assert code == 1
    assert "unknown dataset: 2" in _error_line(err)


def test_missing_file_in_labels_csv(run: Run, market_home: Path, tmp_path: Path) -> None:
    before = _proposal_count(run, market_home)
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"a")
    (folder / "labels.csv").write_text("file,label\na.png,odd\nmissing.png,even\n")
    code, _, err = run("--home", market_home, "propose", "1", folder)
    assert code == 1
    assert "missing.png" in _error_line(err)
    assert _proposal_count(run, market_home) == before


def test_wrong_label_column_names_the_columns(run: Run, market_home: Path, tmp_path: Path) -> None:
    _, batch = tables(tmp_path)
    code, _, err = run("--home", market_home, "propose", "1", batch, "--label-column", "target")
    assert code == 1
    line = _error_line(err)
    assert "target" in line and "label" in line and "x" in line


def test_label_outside_the_label_set(run: Run, market_home: Path, tmp_path: Path) -> None:
    before = _proposal_count(run, market_home)
    path = tmp_path / "bad.csv"
    pd.DataFrame([{"x": 100, "y": 1.0, "label": "prime"}]).to_csv(path, index=False)
    code, _, err = run("--home", market_home, "propose", "1", path)
    assert code == 1
    assert "'prime'" in _error_line(err)
    assert _proposal_count(run, market_home) == before


def test_duplicates_are_refused_unless_allowed(run: Run, market_home: Path, tmp_path: Path) -> None:
    seed, _ = tables(tmp_path)
    before = _proposal_count(run, market_home)
    code, _, err = run("--home", market_home, "propose", "1", seed)
    assert code == 1
    assert "already in dataset 1" in _error_line(err)
    assert _proposal_count(run, market_home) == before
    # The very same batch (same root) cannot be proposed again at all.
    code, _, err = run("--home", market_home, "propose", "1", seed, "--allow-duplicates")
    assert code == 1
    assert "already proposal 1 of dataset 1 (accepted)" in _error_line(err)
    assert _proposal_count(run, market_home) == before
    grown = tmp_path / "grown.csv"
    pd.concat([pd.read_csv(seed), pd.DataFrame([{"x": 99, "y": 9.5, "label": "odd"}])]).to_csv(grown, index=False)
    code, out, err = run("--home", market_home, "propose", "1", grown, "--allow-duplicates", "--json")
    assert code == 0, err
    proposal = as_json(out)
    assert proposal["duplicates"] == 6  # type: ignore[index]
    code, out, _ = run("--home", market_home, "proposal", "show", str(proposal["proposal_id"]), "--json")  # type: ignore[index]
    assert len(as_json(out)["duplicate_items"]) == 6  # type: ignore[index]


def test_double_vote_early_finalize_and_no_shares(run: Run, market_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame([{"x": 1000, "y": 2.0, "label": "even"}]).to_csv(path, index=False)
    code, out, err = run("--home", market_home, "--account", "dev1", "propose", "1", path, "--json")
    assert code == 0, err
    pid = str(as_json(out)["proposal_id"])  # type: ignore[index]
    code, _, err = run("--home", market_home, "--account", "dev1", "vote", pid, "yes")
    assert code == 1
    assert "no shares" in _error_line(err)
    code, _, err = run("--home", market_home, "finalize", pid)
    assert code == 1
    line = _error_line(err)  # when, as a time and as a span, instead of the contract's "voting open"
    assert "can be finalized after 20" in line and " UTC (in " in line, line
    # dev0 holds a majority, but a vote below half would leave it open: vote no to decide
    code, _, err = run("--home", market_home, "vote", pid, "no")
    assert code == 0, err
    code, _, err = run("--home", market_home, "vote", pid, "yes")
    assert code == 1
    assert "already voted" in _error_line(err)
    code, out, err = run("--home", market_home, "finalize", pid, "--json")
    assert code == 0, err
    assert as_json(out)["status"] == "rejected"  # type: ignore[index]
    code, _, err = run("--home", market_home, "finalize", pid)
    assert code == 1
    assert "already rejected" in _error_line(err)
    # voting on a decided proposal says so, not "already voted" or "held no shares"
    for account in ("dev0", "dev1"):
        code, _, err = run("--home", market_home, "--account", account, "vote", pid, "yes")
        assert code == 1
        assert f"proposal {pid} is already rejected; voting on it is over" in _error_line(err)


def test_not_enough_funds_and_bad_amounts(run: Run, market_home: Path) -> None:
    code, _, err = run("--home", market_home, "revenue", "deposit", "1", "1000000000ether")
    assert code == 1
    assert "less than" in _error_line(err)
    code, _, err = run("--home", market_home, "revenue", "deposit", "1", "lots")
    assert code == 1
    assert "invalid amount" in _error_line(err)
    code, _, err = run("--home", market_home, "--account", "dev3", "revenue", "withdraw", "1")
    assert code == 1
    assert "nothing to withdraw" in _error_line(err)


def test_deposit_then_withdraw(run: Run, market_home: Path) -> None:
    code, out, err = run("--home", market_home, "revenue", "deposit", "1", "0.5ether", "--json")
    assert code == 0, err
    code, out, err = run("--home", market_home, "shares", "--json")
    holding = as_json(out)["holdings"][0]  # type: ignore[index]
    assert holding["withdrawable_wei"] >= 5 * 10**17
    code, out, err = run("--home", market_home, "revenue", "withdraw", "1", "--json")
    assert code == 0, err
    assert as_json(out)["amount_wei"] == holding["withdrawable_wei"]  # type: ignore[index]


def test_unknown_account_and_wrong_password(run: Run, market_home: Path, tmp_path: Path) -> None:
    code, _, err = run("--home", market_home, "--account", "dev11", "revenue", "withdraw", "1")
    assert code == 1
    assert "unknown account: dev11 (did you mean dev1?)" in _error_line(err)
    password = tmp_path / "pw"
    password.write_text("not the password\n")
    code, _, err = run("--home", market_home, "--password-file", password, "revenue", "withdraw", "1")
    assert code == 1
    assert "wrong password" in _error_line(err)


def test_accounts_new_list_import(run: Run, market_home: Path, tmp_path: Path) -> None:
    code, out, err = run("--home", market_home, "account", "new", "alice", "--json")
    assert code == 0, err
    alice = as_json(out)
    code, _, err = run("--home", market_home, "account", "new", "alice")
    assert code == 1 and "already exists" in _error_line(err)
    key = tmp_path / "key"
    key.write_text("0x" + "42" * 32)
    code, out, err = run("--home", market_home, "account", "import", "bob", "--private-key-file", key, "--json")
    assert code == 0, err
    code, out, _ = run("--home", market_home, "account", "list", "--json")
    names = {a["name"]: a for a in as_json(out)}  # type: ignore[union-attr]
    assert names["alice"]["address"] == alice["address"]  # type: ignore[index]
    assert names["dev0"]["balance_wei"] > 0
    assert names["bob"]["balance_wei"] == 0
    keyfile = json.loads((market_home / "keystore" / "bob.json").read_text())
    assert keyfile["version"] == 3


def test_init_twice_is_refused(run: Run, market_home: Path) -> None:
    code, _, err = run("--home", market_home, "init")
    assert code == 1
    assert "already a DataBright home" in _error_line(err)


def test_export_loads_in_pandas_and_datasets(
    run: Run, market_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "export"
    code, out, err = run("--home", market_home, "dataset", "export", "1", out_dir, "--json")
    assert code == 0, err
    frame = pd.read_parquet(out_dir / "items.parquet")
    assert {"cid", "label", "x", "y", "contributor"} <= set(frame.columns)
    assert len(frame) == as_json(out)["items"]  # type: ignore[index]
    # the table's columns in the order of the seed table, not sorted
    assert list(frame.columns)[-2:] == ["x", "y"] and list(frame.columns).index("x") > 3
    import datasets

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(out_dir / "items.parquet", elsewhere / "copy.parquet")
    monkeypatch.chdir(elsewhere)
    loaded = datasets.load_dataset("parquet", data_files="copy.parquet", split="train")
    assert loaded.num_rows == len(frame)
    assert set(loaded.column_names) == set(frame.columns)
    label = loaded.features["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == ["odd", "even"]
    assert [label.int2str(i) for i in loaded["label"]] == list(frame["label_name"])
