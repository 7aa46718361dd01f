"""``databright serve`` refuses a malformed --coordinator before it opens anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.conftest import Run


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8700", "127.0.0.1:8700", "http://", "javascript:alert(1)"])
def test_a_coordinator_url_must_be_http(run: Run, tmp_path: Path, url: str) -> None:
    code, out, err = run("--home", tmp_path / "nothing", "serve", "--coordinator", url)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--coordinator" in lines[0] and "http(s)://HOST[:PORT]" in lines[0]
    assert not (tmp_path / "nothing").exists()
