"""The installed ``databright`` command, used the wrong way as a new user (or an attacker) would.

Every mistake gets one line (or one JSON object under --json) and a non-zero
exit code, never a traceback; other people's text is shown as typed; batches
that do not fit a dataset are refused before any transaction.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

BIN = Path(sys.executable).parent / "databright"
EVIL = "[bold red]OWNED[/] [link=http://evil.example]click[/link] \x1b[5mblink\x1b[0m \x1b]8;;http://evil.example\x07x"


def cli(home: Path, *args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "--home", str(home), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def ok(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    result = cli(home, *args)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def pictures(folder: Path, labels: list[str], start: int = 0) -> Path:
    folder.mkdir(parents=True)
    rows = ["file,label"]
    for i, label in enumerate(labels):
        Image.new("L", (8, 8), color=(start + i) % 256).save(folder / f"p{start + i}.png")
        rows.append(f"p{start + i}.png,{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset 1: a table (columns zeta, alpha); dataset 2: PNG files; dataset 3: a name full of markup."""
    root = tmp_path_factory.mktemp("misuse")
    home = root / "home"
    seed = root / "seed.csv"
    pd.DataFrame({"zeta": [1, 2, 3], "alpha": [0.5, 1.5, 2.5], "label": ["odd", "even", "odd"]}).to_csv(
        seed, index=False)
    ok(home, "init", "--accounts", "3")
    ok(home, "deploy")
    ok(home, "dataset", "create", "numbers", "--kind", "table", "--classes", "odd,even", "--seed", seed)
    ok(home, "dataset", "create", "pictures", "--classes", "cat,dog", "--seed",
       pictures(root / "pics", ["cat", "dog", "cat"]))
    ok(home, "dataset", "create", EVIL, "--description", EVIL, "--classes", "a")
    return home


def proposal_count(home: Path) -> int:
    return len(json.loads(ok(home, "proposal", "list", "--json").stdout)["proposals"])


def balance(home: Path, account: str) -> int:
    accounts = json.loads(ok(home, "account", "list", "--json").stdout)
    return int(next(a["balance_wei"] for a in accounts if a["name"] == account))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["vote"], "vote: Missing argument"),
        (["bogus"], "No such command 'bogus'"),
        (["vote", "abc", "yes"], "vote: Invalid value for 'proposal_id'"),
        (["revenue", "deposit", "1", "-1ether"], "negative numbers are not accepted"),
        (["dataset", "show", "1", "--no-such-flag"], "No such option: --no-such-flag"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(home: Path, args: list[str], says: str) -> None:
    line = one_error_line(cli(home, *args), code=2)
    assert says in line and "--help" in line
    result = cli(home, *args, "--json")
    assert result.returncode == 2 and result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "usage" and says in error["message"]


def test_help_is_quick_and_the_cli_imports_nothing_heavy(tmp_path: Path) -> None:
    imported = subprocess.run([sys.executable, "-X", "importtime", "-c", "import databright.cli"],
                              capture_output=True, text=True, timeout=60, check=True).stderr
    modules = {line.split("|")[-1].strip().split(".")[0] for line in imported.splitlines() if "|" in line}
    assert not modules & {"torch", "web3", "eth_account", "numpy", "pandas", "pyarrow", "vyper", "fastapi",
                          "sqlalchemy"}
    # CPU time of the child (user + system): what start-up costs, not how busy the machine is
    wall, cpu = [], []
    for _ in range(5):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run([str(BIN), "--help"], capture_output=True, timeout=60, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - start)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    # the goal is 0.25 s; twice that leaves room for machine noise
    assert min(cpu) <= 0.5, f"databright --help used {min(cpu):.2f} s CPU ({statistics.median(wall):.2f} s wall)"


def test_other_peoples_text_is_shown_as_typed(home: Path) -> None:
    colour = dict(os.environ, FORCE_COLOR="1", COLUMNS="400")
    for args in (["dataset", "list"], ["dataset", "show", "3"]):
        out = cli(home, *args, env=colour)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "[bold red]OWNED[/]" in text and "[link=http://evil.example]click[/link]" in text
        assert "\x1b]8;" not in text  # no hyperlink escape sequence, neither from markup nor raw
        assert "\x1b[5m" not in text and "\\x1b[5mblink" in text  # raw escapes are shown, not obeyed
        assert "\x07" not in text
    shown = json.loads(ok(home, "dataset", "show", "3", "--json").stdout)
    assert shown["name"] == EVIL  # JSON keeps the exact text, escaped by JSON itself


def test_batches_that_do_not_fit_are_refused_before_any_transaction(home: Path, tmp_path: Path) -> None:
    before, bond_payer = proposal_count(home), balance(home, "dev1")
    table = tmp_path / "rows.csv"  # labels the files dataset allows: only its kind is wrong
    pd.DataFrame({"zeta": [7], "alpha": [0.1], "label": ["cat"]}).to_csv(table, index=False)
    line = one_error_line(cli(home, "--account", "dev1", "propose", "2", table))
    assert "dataset 2 holds files" in line and "rows.csv is table rows" in line
    line = one_error_line(cli(home, "--account", "dev1", "propose", "1", pictures(tmp_path / "p", ["odd"], 50)))
    assert "dataset 1 holds table rows" in line and "files" in line
    short = tmp_path / "short.csv"
    pd.DataFrame({"zeta": [8, 9], "label": ["odd", "even"]}).to_csv(short, index=False)
    line = one_error_line(cli(home, "--account", "dev1", "propose", "1", short))
    assert "short.csv line 2: missing column(s) alpha" in line and "has columns zeta, alpha" in line
    extra = tmp_path / "extra.csv"
    pd.DataFrame({"zeta": [8], "alpha": [1.0], "beta": [2], "label": ["odd"]}).to_csv(extra, index=False)
    assert "column(s) beta not in the dataset" in one_error_line(cli(home, "--account", "dev1", "propose", "1",
                                                                      extra))
    # the line of the offending row, as the labels CSV of a folder reports it
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"zeta": [10, 11], "alpha": [1.0, 2.0], "label": ["odd", "prime"]}).to_csv(bad, index=False)
    assert "bad.csv line 3: label 'prime'" in one_error_line(cli(home, "--account", "dev1", "propose", "1", bad))
    assert proposal_count(home) == before and balance(home, "dev1") == bond_payer


def test_decided_proposals_say_so(home: Path, tmp_path: Path) -> None:
    batch = tmp_path / "more.csv"
    pd.DataFrame({"zeta": [20, 21], "alpha": [1.0, 2.0], "label": ["odd", "even"]}).to_csv(batch, index=False)
    pid = json.loads(ok(home, "--account", "dev1", "propose", "1", batch, "--json").stdout)["proposal_id"]
    ok(home, "vote", pid, "yes")  # dev0 holds every share: accepted at once
    assert json.loads(ok(home, "finalize", pid, "--json").stdout)["status"] == "accepted"
    line = one_error_line(cli(home, "vote", pid, "no"))
    assert f"proposal {pid} is already accepted; voting on it is over" in line  # not "already voted"
    result = cli(home, "vote", pid, "no", "--json")
    assert result.returncode == 1 and json.loads(result.stdout) == {
        "error": {"code": "input", "message": f"proposal {pid} is already accepted; voting on it is over"}}


def test_a_damaged_key_file_fails_only_its_account(home: Path) -> None:
    keyfile = home / "keystore" / "dev2.json"
    original = keyfile.read_bytes()
    keyfile.write_bytes(original[: len(original) // 2])
    try:
        listed = cli(home, "account", "list", "--json")
        assert listed.returncode == 0
        assert [a["name"] for a in json.loads(listed.stdout)] == ["dev0", "dev1"]
        warning = [line for line in listed.stderr.splitlines() if line.strip()]
        assert len(warning) == 1 and "skipping damaged key file" in warning[0] and "dev2.json" in warning[0]
        assert cli(home, "--account", "dev1", "shares", "--json").returncode == 0
        line = one_error_line(cli(home, "--account", "dev2", "shares"))
        assert "key file of account 'dev2' is damaged" in line
        assert "in the way" in one_error_line(cli(home, "account", "new", "dev2"))  # never overwritten
        assert keyfile.read_bytes() == original[: len(original) // 2]
    finally:
        keyfile.write_bytes(original)


def test_a_read_only_home_gives_one_line(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ro"
    shutil.copytree(home, copy)
    (copy / "chain" / "node.json").unlink(missing_ok=True)
    script = (f"mount --bind {copy} {copy} && mount -o remount,bind,ro {copy} && "
              f"exec {BIN} --home {copy} dataset list")
    if os.geteuid() == 0:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {copy} {copy}"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("cannot mount a read-only home here")
        result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    else:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        result = cli(copy, "dataset", "list")
    line = one_error_line(result)
    assert "cannot write" in line and str(copy) in line


def test_file_export_loads_with_hugging_face_from_anywhere(home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    export = tmp_path / "export"
    ok(home, "dataset", "export", "2", export)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(export / "items.parquet", moved / "pictures.parquet")
    shutil.rmtree(export)  # nothing the export pointed at is left
    monkeypatch.chdir(moved)
    loaded = datasets.load_dataset("parquet", data_files="pictures.parquet", split="train")
    assert isinstance(loaded.features["file"], datasets.Image)
    assert loaded.features["label"].names == ["cat", "dog"]
    assert [loaded.features["label"].int2str(i) for i in loaded["label"]] == ["cat", "dog", "cat"]
    assert loaded[1]["file"].size == (8, 8) and loaded[1]["file"].getpixel((0, 0)) == 1
    recast = loaded.cast_column("file", datasets.Image(decode=True))
    assert recast[2]["file"].getpixel((0, 0)) == 2


def test_table_export_keeps_the_columns_in_their_order(home: Path, tmp_path: Path) -> None:
    result = json.loads(ok(home, "dataset", "export", "1", tmp_path / "t", "--json").stdout)
    assert result["columns"][-2:] == ["zeta", "alpha"]
    frame = pd.read_parquet(tmp_path / "t" / "items.parquet")
    assert list(frame.columns)[-2:] == ["zeta", "alpha"]


def test_serve_answers_as_soon_as_it_prints_its_url(home: Path) -> None:
    import urllib.request

    from tests._servers import free_port, stop

    port = free_port()
    process = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets", timeout=60) as reply:
            assert reply.status == 200 and len(json.loads(reply.read())) == 3
    finally:
        stop(process)  # type: ignore[arg-type]
