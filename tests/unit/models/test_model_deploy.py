"""A home deployed before ModelMarket existed gets it added next to its DataMarket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from databright.cli import main


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--home", str(home), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_model_deploy_on_an_older_deployment(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(capsys, home, "init", "--accounts", "2")[0] == 0
    assert run(capsys, home, "deploy")[0] == 0
    manifest = home / "deployments" / "31415.json"
    data = json.loads(manifest.read_text())
    data_market = data["contracts"]["DataMarket"]["address"]
    del data["contracts"]["ModelMarket"]
    manifest.write_text(json.dumps(data))

    code, _, err = run(capsys, home, "model", "list")
    assert code == 1 and err.strip() == "error: ModelMarket is not deployed on chain 31415; run 'databright model deploy'"
    code, out, err = run(capsys, home, "model", "deploy", "--json")
    assert code == 0, err
    address = json.loads(out)["ModelMarket"]
    data = json.loads(manifest.read_text())
    assert data["contracts"]["DataMarket"]["address"] == data_market
    assert data["contracts"]["ModelMarket"]["address"] == address
    code, out, _ = run(capsys, home, "model", "list", "--json")
    assert code == 0 and json.loads(out) == {"models": []}
    code, _, err = run(capsys, home, "model", "deploy")
    assert code == 1 and "already deployed" in err


def _linked(home: Path) -> tuple[str | None, str]:
    """The ComputeMarket the home's ModelMarket is linked to, and the manifest's ComputeMarket."""
    from databright.workspace import Workspace

    ws = Workspace(home)
    try:
        return ws.model_market.compute_market_address(), ws.compute_market.address
    finally:
        ws.close()


def test_the_second_market_deployed_links_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(capsys, home, "init", "--accounts", "2")[0] == 0
    assert run(capsys, home, "deploy")[0] == 0
    linked, compute = _linked(home)
    assert linked == compute
    manifest = home / "deployments" / "31415.json"
    data = json.loads(manifest.read_text())
    for name in ("ModelMarket", "ComputeMarket"):  # a deployment from before both
        del data["contracts"][name]
    manifest.write_text(json.dumps(data))
    assert run(capsys, home, "model", "deploy")[0] == 0  # no ComputeMarket to link yet
    assert run(capsys, home, "compute", "deploy")[0] == 0
    linked, compute = _linked(home)
    assert linked == compute and linked != json.loads(manifest.read_text())["contracts"]["DataMarket"]["address"]


def test_a_model_market_that_cannot_be_linked_is_left_as_it_is(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(capsys, home, "init", "--accounts", "2")[0] == 0
    assert run(capsys, home, "deploy")[0] == 0
    manifest = home / "deployments" / "31415.json"
    data = json.loads(manifest.read_text())
    # Stands in for a ModelMarket deployed before it could be linked: a contract without `deployer`.
    data["contracts"]["ModelMarket"] = dict(data["contracts"]["DataMarket"])
    del data["contracts"]["ComputeMarket"]
    manifest.write_text(json.dumps(data))
    code, _, err = run(capsys, home, "compute", "deploy")
    assert code == 0, err
    assert _linked(home)[0] is None
