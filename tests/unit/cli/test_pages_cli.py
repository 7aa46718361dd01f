"""The CLI's lists page by cursor; a cursor it did not print is a usage error."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.conftest import Run, as_json


def test_dataset_items_page_by_cursor(run: Run, market_home: Path) -> None:
    code, out, _ = run("--home", market_home, "dataset", "items", "1", "--json", "--limit", "1000")
    everything = as_json(out)
    assert code == 0 and everything["next_cursor"] is None  # type: ignore[index]
    assert everything["total"] == len(everything["items"]) == 6  # type: ignore[index,arg-type]
    seen, cursor = [], None
    while True:
        args = ["--home", market_home, "dataset", "items", "1", "--limit", "4", "--json"]
        code, out, _ = run(*args, *(["--cursor", cursor] if cursor else []))
        page = as_json(out)
        seen += [i["cid"] for i in page["items"]]  # type: ignore[index]
        cursor = page["next_cursor"]  # type: ignore[index]
        if cursor is None:
            break
    assert seen == [i["cid"] for i in everything["items"]]  # type: ignore[index]


def test_proposal_show_lists_a_page_of_items(run: Run, market_home: Path) -> None:
    code, out, _ = run("--home", market_home, "proposal", "show", "1", "--limit", "2", "--json")
    shown = as_json(out)
    assert code == 0 and [i["position"] for i in shown["item_page"]] == [0, 1]  # type: ignore[index]
    assert sum(shown["labels"].values()) == 6 and shown["next_cursor"]  # type: ignore[index]
    code, out, _ = run("--home", market_home, "proposal", "show", "1", "--cursor", shown["next_cursor"], "--json")  # type: ignore[index]
    assert [i["position"] for i in as_json(out)["item_page"]] == [2, 3, 4, 5]  # type: ignore[index]


def test_a_bad_cursor_or_limit_is_a_usage_error(run: Run, market_home: Path) -> None:
    for args in (["dataset", "items", "1", "--cursor", "junk"], ["proposal", "list", "--cursor", "junk"],
                 ["proposal", "show", "1", "--cursor", "junk"], ["dataset", "items", "1", "--limit", "0"]):
        code, _, err = run("--home", market_home, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    code, out, _ = run("--home", market_home, "proposal", "list", "--json")
    listed = as_json(out)
    assert listed["total"] == len(listed["proposals"]) and listed["next_cursor"] is None  # type: ignore[index,arg-type]
