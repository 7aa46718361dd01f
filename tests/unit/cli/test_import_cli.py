from __future__ import annotations

import pickle
from pathlib import Path

from tests.unit.cli.conftest import Run, as_json
from tests.unit.storage.test_importers import _cifar10


def test_create_and_propose_from_a_cifar_archive(run: Run, tmp_path: Path) -> None:
    home = tmp_path / "home"
    archive = tmp_path / "cifar-10-python.tar.gz"
    _cifar10(archive)
    for args in (["init", "--accounts", "2"], ["deploy"]):
        code, _, err = run("--home", home, *args)
        assert code == 0, err
    code, out, err = run("--home", home, "dataset", "create", "cifar", "--classes", "airplane,automobile,bird",
                         "--seed", archive, "--from", "cifar", "--json")
    assert code == 0, err
    assert as_json(out)["items"] == 12  # type: ignore[index]
    code, out, err = run("--home", home, "propose", "1", archive, "--from", "cifar", "--split", "test", "--json")
    assert code == 0, err
    assert as_json(out)["items"] == 6  # type: ignore[index]

    # A tampered archive is refused with one line, and nothing is proposed.
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"bird"]}, protocol=2))
    (evil / "data_batch_1").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    code, _, err = run("--home", home, "propose", "1", evil, "--from", "cifar")
    assert code == 1
    assert err.strip().splitlines() == ["error: data_batch_1: not a CIFAR batch this reader accepts "
                                        "(refusing to load os.system from a pickle)"]
    code, out, _ = run("--home", home, "proposal", "list", "--json")
    assert len(as_json(out)["proposals"]) == 2  # type: ignore[index,arg-type]
