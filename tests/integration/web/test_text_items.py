"""The item browser of a text dataset shows each text on one escaped, truncated line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from databright.chain import DatasetParams
from databright.operations import DatasetMetadata, create_dataset, load_batch, propose_batch
from databright.web import DEFAULT_HOSTS, create_app
from databright.workspace import Workspace
from tests.integration.web.conftest import init_home

HOSTILE = '<script>alert(1)</script> \x1b[31mred\u202e'


def test_text_items_are_shown_escaped_and_truncated(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("webtext")
    home = root / "home"
    init_home(home, accounts=2)
    (root / "src-train.txt").write_text(f"{HOSTILE}\n{'long ' * 60}\n")
    (root / "tgt-train.txt").write_text("harmlos\nlang\n")
    (root / "more.jsonl").write_text('{"source": "tab\\there", "target": "line\\nbreak"}\n')
    ws = Workspace(home)
    try:
        seed = load_batch(ws, root / "src-train.txt", source_format="opennmt")
        meta = DatasetMetadata("en-de", "", "text", (), "CC0", (("paired", True),))
        params = DatasetParams(metadata_digest=b"\0" * 32, initial_shares=1000, base_reward_per_item=10)
        dataset_id, _ = create_dataset(ws, ws.signer("dev0"), meta, params, seed=seed)
        proposal_id, _ = propose_batch(ws, ws.signer("dev1"), dataset_id,
                                       load_batch(ws, root / "more.jsonl", source_format="jsonl"))
        with TestClient(create_app(ws, secret="s", allowed_hosts=[*DEFAULT_HOSTS, "testserver"])) as client:
            page = client.get(f"/datasets/{dataset_id}").text
            assert "&lt;script&gt;alert(1)&lt;/script&gt; \\x1b[31mred\\u202e → harmlos" in page
            assert "<script>alert(1)" not in page and "\x1b" not in page and "\u202e" not in page
            assert "long " * 23 + "long…" in page and "long " * 30 not in page  # one line of 120 characters
            proposal = client.get(f"/proposals/{proposal_id}").text
            assert "tab\\there → line\\nbreak" in proposal
    finally:
        ws.close()
