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
