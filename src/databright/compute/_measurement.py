"""The software measurement: a hash of the installed databright code and its locked dependencies.

Hardware attestation measures the code an enclave loaded (MRENCLAVE, MRTD); the
software backend stands in for that with a hash over what decides a coordinator's
behaviour in this installation:

* every file of the installed ``databright`` package (sources, contracts,
  templates), named by its path relative to the package and hashed by content;
  ``__pycache__`` folders and ``.pyc`` files are derived and left out;
* the locked dependency list: the closure of ``databright``'s runtime
  requirements (markers evaluated, extras not followed) resolved to the exact
  versions installed, plus the Python implementation and version.

The manifest is plain text, one line each, in a fixed order::

    databright-measurement v1
    python cpython 3.11.9
    file <sha256 hex> <relative/path>        (sorted by path)
    dependency <name>==<version>             (sorted by normalised name)

and the measurement is the SHA-256 of the manifest's UTF-8 bytes joined by
``\\n``. Modification times, install locations and file order on disk do not
enter it, so two installs of the same release with the same locked dependencies
measure the same. A software measurement is reported by the operator's own
process: it says what the operator claims to run, not what a machine proves.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as metadata
import platform
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import databright
from databright.errors import AttestationError

__all__ = ["MANIFEST_VERSION", "manifest", "package_measurement"]

MANIFEST_VERSION = "databright-measurement v1"


def manifest(root: Path | None = None, distribution: str = "databright") -> list[str]:
    """The manifest lines of the package at ``root`` (default: the imported databright)."""
    package = Path(databright.__file__).parent if root is None else root
    if not package.is_dir():
        raise AttestationError(f"cannot measure {package}: not a package folder")
    lines = [MANIFEST_VERSION, f"python {sys.implementation.name} {platform.python_version()}"]
    for path in sorted(_files(package), key=lambda p: p.relative_to(package).as_posix()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"file {digest} {path.relative_to(package).as_posix()}")
    lines += [f"dependency {name}=={version}" for name, version in _locked(distribution)]
    return lines


def package_measurement(root: Path | None = None, distribution: str = "databright") -> bytes:
    """SHA-256 (32 bytes) of :func:`manifest`; the installed package's is computed once."""
    if root is None and distribution == "databright":
        return _installed_measurement()
    return _digest(manifest(root, distribution))


@functools.cache
def _installed_measurement() -> bytes:
    # The installed code does not change while a process runs.
    return _digest(manifest())


def _digest(lines: list[str]) -> bytes:
    return hashlib.sha256("\n".join(lines).encode("utf-8")).digest()


def _files(package: Path) -> list[Path]:
    return [
        p
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _locked(distribution: str) -> list[tuple[str, str]]:
    """(normalised name, installed version) for the runtime dependency closure.

    Extras are followed only where a requirement asks for them (``eth-tester[py-evm]``),
    never databright's own optional ones.
    """
    try:
        roots = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        raise AttestationError(
            f"{distribution} is not installed, so its dependencies cannot be measured"
        ) from None
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(line, frozenset({""})) for line in roots]
    while pending:
        line, extras = pending.pop()
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            raise AttestationError(f"unreadable requirement {line!r} in installed metadata") from None
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(requirement.name)
        wanted = frozenset({"", *requirement.extras})
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            found[name] = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            raise AttestationError(f"dependency {requirement.name} is not installed") from None
        pending += [(sub, wanted) for sub in metadata.requires(requirement.name) or []]
    return sorted(found.items())
