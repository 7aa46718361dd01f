"""Compiling the Vyper contracts shipped with the package.

Contracts are compiled on first use with the pinned Vyper compiler and cached
under ``HOME/cache/contracts`` keyed by the sha-256 of every source file that
goes into them, so an edited contract is never served from a stale cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databright.errors import ChainError

__all__ = ["CONTRACTS_DIR", "CompiledContract", "compile_contract", "source_hashes"]

CONTRACTS_DIR = Path(__file__).parent / "contracts"


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_sha256: str


def _sources() -> list[Path]:
    return sorted(p for p in CONTRACTS_DIR.iterdir() if p.suffix in {".vy", ".vyi"})


def source_hashes() -> dict[str, str]:
    """sha-256 of each contract source file, as recorded in deployment manifests."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in _sources()}


def _fingerprint() -> str:
    # the installed version, without importing the compiler (a tenth of a second) on a cache hit
    h = hashlib.sha256(importlib.metadata.version("vyper").encode())
    for name, digest in sorted(source_hashes().items()):
        h.update(f"{name}:{digest}".encode())
    return h.hexdigest()


def compile_contract(name: str, cache_dir: Path | None = None) -> CompiledContract:
    """Compile ``contracts/<name>.vy`` (cached when ``cache_dir`` is given)."""
    path = CONTRACTS_DIR / f"{name}.vy"
    if not path.is_file():
        raise ChainError(f"no contract named {name}")
    fingerprint = _fingerprint()
    cached = cache_dir / f"{name}-{fingerprint[:16]}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        data = json.loads(cached.read_text())
        return CompiledContract(name, data["abi"], bytes.fromhex(data["bytecode"]), data["source_sha256"])
    from vyper.cli.vyper_compile import get_search_paths
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle

    bundle = FilesystemInputBundle(get_search_paths([str(CONTRACTS_DIR)]))
    try:
        out = compile_from_file_input(bundle.load_file(path), input_bundle=bundle, output_formats=["abi", "bytecode"])
    except Exception as exc:  # vyper raises many unrelated exception types
        raise ChainError(f"cannot compile {path.name}: {exc}") from exc
    compiled = CompiledContract(
        name,
        out["abi"],
        bytes.fromhex(out["bytecode"].removeprefix("0x")),
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        payload = {"abi": compiled.abi, "bytecode": compiled.bytecode.hex(), "source_sha256": compiled.source_sha256}
        tmp.write_text(json.dumps(payload))
        tmp.replace(cached)
    return compiled
