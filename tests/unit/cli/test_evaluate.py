"""Evaluations through the CLI on the embedded chain: post, show, verify, the service."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from databright.cli import main
from tests.unit.cli.conftest import Run, as_json


def _tables(folder: Path) -> dict[str, Path]:
    digits = load_digits()
    order = np.random.default_rng(3).permutation(len(digits.target))
    frame = pd.DataFrame(digits.data[order], columns=[f"p{i:02d}" for i in range(64)])
    frame["label"] = digits.target[order].astype(str)
    flipped = frame.iloc[500:600].copy()
    flipped["label"] = ((flipped["label"].astype(int) + 3) % 10).astype(str)
    parts = {
        "seed": frame.iloc[:150],
        "validation": frame.iloc[1400:1797],
        "clean": frame.iloc[300:400],
        "flipped": flipped,
        "clean2": frame.iloc[700:800],
    }
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.csv"
        part.to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def evaluated_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    home = tmp_path_factory.mktemp("eval-home")
    paths = _tables(home.parent)
    for args in (
        ["init", "--accounts", "4"],
        ["deploy"],
        ["dataset", "create", "digits-table", "--kind", "table", "--classes", ",".join(map(str, range(10))),
         "--seed", paths["seed"], "--validation", paths["validation"], "--evaluator", "dev2",
         "--evaluation-required", "--base-reward", "5"],
    ):
        try:
            main(["--home", str(home), *map(str, args)])
        except SystemExit as exc:
            assert not exc.code, f"{args} failed"
    return home, paths


def test_evaluate_post_show_and_verify(run: Run, evaluated_home: tuple[Path, dict[str, Path]]) -> None:
    home, paths = evaluated_home
    code, out, err = run("--home", home, "--account", "dev1", "propose", "1", paths["clean"], "--json")
    assert code == 0, err
    pid = str(as_json(out)["proposal_id"])  # type: ignore[index]

    # Voting opens when the evaluation is posted: what voters approve is what gets minted.
    code, _, err = run("--home", home, "vote", pid, "yes")
    assert code == 1 and "waits for its evaluation" in err
    code, _, err = run("--home", home, "finalize", pid)
    assert code == 1 and "awaiting evaluation" in err

    code, _, err = run("--home", home, "--account", "dev1", "evaluate", pid)
    assert code == 1 and "is not the evaluator" in err

    code, out, err = run("--home", home, "--account", "dev2", "evaluate", pid, "--json")
    assert code == 0, err
    evaluation = as_json(out)
    assert evaluation["posted"] and evaluation["shares"] > 0  # type: ignore[index]
    assert len(evaluation["scores"]) == 5  # type: ignore[index]
    assert evaluation["signals"]["exact_duplicates"] == []  # type: ignore[index]

    code, out, _ = run("--home", home, "proposal", "show", pid, "--json")
    shown = as_json(out)["evaluation"]  # type: ignore[index]
    assert shown["report_cid"] == evaluation["report_cid"]  # type: ignore[index]
    assert shown["value_ppm"] == evaluation["value_ppm"]  # type: ignore[index]

    code, out, err = run("--home", home, "evaluate", "--verify", evaluation["report_cid"], "--json")  # type: ignore[index]
    assert code == 0, err
    assert as_json(out)["identical"] is True  # type: ignore[index]

    code, _, err = run("--home", home, "--account", "dev2", "evaluate", pid)
    assert code == 1 and "already evaluated" in err  # posted once
    code, _, err = run("--home", home, "vote", pid, "yes")  # dev0 holds every share: decided at once
    assert code == 0, err

    code, out, err = run("--home", home, "finalize", pid, "--json")
    assert code == 0, err
    assert as_json(out)["shares_minted"] == evaluation["shares"]  # type: ignore[index]


def test_service_evaluates_each_proposal_once(run: Run, evaluated_home: tuple[Path, dict[str, Path]]) -> None:
    home, paths = evaluated_home
    pids = []
    for name in ("flipped", "clean2"):
        code, out, err = run("--home", home, "--account", "dev3", "propose", "1", paths[name], "--json")
        assert code == 0, err
        pids.append(str(as_json(out)["proposal_id"]))  # type: ignore[index]
    code, out, err = run("--home", home, "--account", "dev2", "evaluator", "run", "--once", "--json")
    assert code == 0, err
    assert as_json(out)["evaluated"] == 2  # type: ignore[index]
    # the gain in the unit of 'proposal show' and the dashboard: accuracy points
    progress = re.findall(r"gain ([+-]\d+\.\d\d) points", err)
    assert len(progress) == 2, err
    # a restarted service finds nothing left to do
    code, out, err = run("--home", home, "--account", "dev2", "evaluator", "run", "--once", "--json")
    assert code == 0, err
    assert as_json(out)["evaluated"] == 0  # type: ignore[index]

    flipped = as_json(run("--home", home, "proposal", "show", pids[0], "--json")[1])["evaluation"]  # type: ignore[index]
    clean = as_json(run("--home", home, "proposal", "show", pids[1], "--json")[1])["evaluation"]  # type: ignore[index]
    assert flipped["gain"]["mean"] < 0 < clean["gain"]["mean"]
    assert [f"{e['gain']['mean'] * 100:+.2f}" for e in (flipped, clean)] == progress
    assert flipped["shares"] == 0 and clean["shares"] > 0
    assert len(flipped["signals"]["suspected_mislabels"]) > 50
    assert len(clean["signals"]["suspected_mislabels"]) < 10


def test_verify_rejects_what_is_not_a_report(run: Run, evaluated_home: tuple[Path, dict[str, Path]]) -> None:
    home, _ = evaluated_home
    code, out, _ = run("--home", home, "dataset", "show", "1", "--json")
    metadata_cid = as_json(out)["metadata_cid"]  # type: ignore[index]
    code, _, err = run("--home", home, "evaluate", "--verify", metadata_cid)
    assert code == 1 and "not an evaluation report" in err
    code, _, err = run("--home", home, "evaluate", "--verify", "bafkreinotacid")
    assert code == 1 and err.startswith("error:")


def test_service_survives_a_dataset_it_cannot_serve(run: Run, evaluated_home: tuple[Path, dict[str, Path]]) -> None:
    home, paths = evaluated_home
    # a second dataset of the same evaluator, without any accepted data yet
    code, out, err = run("--home", home, "dataset", "create", "empty", "--kind", "table", "--validation",
                         paths["validation"], "--evaluator", "dev2", "--json")
    assert code == 0, err
    empty = str(as_json(out)["dataset_id"])  # type: ignore[index]
    code, out, err = run("--home", home, "--account", "dev3", "propose", empty, paths["clean"], "--json")
    assert code == 0, err
    repeat = home.parent / "seed-part.csv"  # the seed again, but not the same batch (a root is proposed once)
    pd.read_csv(paths["seed"]).iloc[:100].to_csv(repeat, index=False)
    code, out, err = run("--home", home, "--account", "dev3", "propose", "1", repeat, "--allow-duplicates",
                         "--json")
    assert code == 0, err
    code, out, err = run("--home", home, "--account", "dev2", "evaluator", "run", "--once", "--json")
    assert code == 0, err
    assert as_json(out)["evaluated"] == 1  # type: ignore[index]
    assert "no accepted items" in err


def test_a_proposal_whose_manifest_does_not_match_is_not_valued(
    run: Run, evaluated_home: tuple[Path, dict[str, Path]]
) -> None:
    from databright.operations import load_batch
    from databright.storage import digest_of_cid
    from databright.workspace import Workspace

    home, paths = evaluated_home
    ws = Workspace(home, account="dev3")
    try:
        part = home.parent / "clean2-part.csv"  # a root not proposed yet
        pd.read_csv(paths["clean2"]).iloc[:50].to_csv(part, index=False)
        batch = load_batch(ws, part)
        # sent around the CLI's checks: the committed count is not the manifest's
        ws.market.propose(ws.signer(), 1, batch.manifest.root, digest_of_cid(batch.manifest_cid), batch.size + 50)
        pid = str(ws.market.proposal_count())
    finally:
        ws.close()
    code, out, err = run("--home", home, "--account", "dev2", "evaluate", pid, "--json")
    assert code == 0, err
    evaluation = as_json(out)
    assert evaluation["shares"] == 0 and "manifest_mismatch" in evaluation  # type: ignore[operator,index]
    code, out, _ = run("--home", home, "proposal", "show", pid, "--json")
    assert as_json(out)["manifest_matches"] is False  # type: ignore[index]
    code, _, err = run("--home", home, "vote", pid, "yes")  # nobody approves it unnoticed
    assert code == 1 and "does not match" in err
    code, out, err = run("--home", home, "evaluate", "--verify", evaluation["report_cid"], "--json")  # type: ignore[index]
    assert code == 0 and as_json(out)["identical"] is True, err  # type: ignore[index]
