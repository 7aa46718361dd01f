"""Environment fingerprints: which workers can be expected to compute the same bits.

Triple modular redundancy and replayed verification compare training results by
digest, bitwise, so they may only pair workers whose results are bitwise equal
when all are honest. :func:`databright.ml.train` is deterministic within one
environment (seeded generators, one intra-op thread); across machines the
results still depend on which SIMD kernels run. Three libraries pick kernels by
the CPU they find, and each can be capped by an environment variable read when
the library starts:

* ATen's vectorised kernels (elementwise ops, reductions, softmax, optimizers):
  ``ATEN_CPU_CAPABILITY`` = ``default`` | ``avx2`` | ``avx512``;
* oneDNN (convolutions, pooling): ``ONEDNN_MAX_CPU_ISA`` = ``SSE41`` | ``AVX2`` | ...;
* MKL (matrix products): ``MKL_CBWR=COMPATIBLE`` makes results independent of
  the CPU (conditional numerical reproducibility).

:func:`pinned_environment` gives the values a worker process is started with so
that every x86-64 CPU runs the same code paths (docs/reproducibility.md says what
was measured and what is not guaranteed). :func:`fingerprint` reports what the
current process actually runs with; :attr:`Fingerprint.digest` covers exactly
the fields that decide results, so coordinators pair equal digests only.
:func:`probe` trains a small MLP and a small CNN and returns their checkpoint
digests: the empirical check that two environments agree.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from databright.ml import ModelSpec, checkpoint_digest, train
from databright.ml._train import TRAIN_THREADS
from databright.storage import canonical_json

__all__ = ["Fingerprint", "fingerprint", "pinned_environment", "probe"]

#: Start-up variables that decide which kernels run, in the order they are reported.
ISA_VARIABLES = (
    "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
)  # fmt: skip

#: What :func:`pinned_environment` sets (measured on AVX-512 hardware, see docs/reproducibility.md).
_PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": str(TRAIN_THREADS),
    "MKL_NUM_THREADS": str(TRAIN_THREADS),
}

#: The /proc/cpuinfo flags worth reporting: the SIMD levels kernels dispatch on.
_ISA_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512dq", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
    "amx_int8", "asimd", "sve", "sve2",
)  # fmt: skip


@dataclass(frozen=True)
class Fingerprint:
    """What decides a training result's bits in this process, and what it runs on.

    ``digest`` covers the result-deciding fields only (versions, threads,
    deterministic settings, the kernels' ISA caps as in force, the effective ATen
    capability and the architecture); CPU vendor, model and flags are reported
    for diagnosis but left out, since with :func:`pinned_environment` they no
    longer change results.
    """

    torch: str
    numpy: str
    python: str
    machine: str
    threads: int
    deterministic_algorithms: bool
    mkldnn_enabled: bool
    aten_cpu_capability: str
    onednn_max_cpu_isa: str
    mkl_cbwr: str
    mkl_enable_instructions: str
    cpu_capability: str
    pinned: bool
    cpu_vendor: str
    cpu_model: str
    cpu_flags: tuple[str, ...]

    def _deciding(self) -> dict[str, object]:
        fields = asdict(self)
        for informative in ("pinned", "cpu_vendor", "cpu_model", "cpu_flags"):
            del fields[informative]
        if self.mkl_cbwr == "COMPATIBLE":
            # MKL then runs its CPU-independent code path whatever instructions it may use.
            del fields["mkl_enable_instructions"]
        return fields

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the result-deciding fields as canonical JSON."""
        return hashlib.sha256(canonical_json(self._deciding())).hexdigest()

    def as_dict(self) -> dict[str, object]:
        """Every field plus ``digest``: what a worker advertises to a coordinator."""
        out: dict[str, object] = asdict(self)
        out["cpu_flags"] = list(self.cpu_flags)
        out["digest"] = self.digest
        return out


def pinned_environment() -> dict[str, str]:
    """Environment variables a worker process must be started with for portable bits.

    They are read when torch, oneDNN and MKL start, so they only take effect in a
    new process: ``subprocess.run(cmd, env=os.environ | pinned_environment())``.
    """
    return dict(_PINNED)


def fingerprint() -> Fingerprint:
    """The current process's fingerprint (environment as it was at start-up)."""
    vendor, model, flags = _cpu_info(Path("/proc/cpuinfo"))
    settings = {name: os.environ.get(name, "") for name in ISA_VARIABLES}
    return Fingerprint(
        torch=torch.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        threads=TRAIN_THREADS,
        deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
        mkldnn_enabled=bool(torch.backends.mkldnn.enabled),
        aten_cpu_capability=settings["ATEN_CPU_CAPABILITY"],
        onednn_max_cpu_isa=settings["ONEDNN_MAX_CPU_ISA"],
        mkl_cbwr=settings["MKL_CBWR"],
        # Irrelevant under MKL_CBWR=COMPATIBLE, but it changes results without it.
        mkl_enable_instructions=settings["MKL_ENABLE_INSTRUCTIONS"],
        cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
        pinned=all(os.environ.get(k) == v for k, v in _PINNED.items()),
        cpu_vendor=vendor,
        cpu_model=model,
        cpu_flags=flags,
    )


def _cpu_info(path: Path) -> tuple[str, str, tuple[str, ...]]:
    """Vendor, model name and SIMD flags of the first CPU listed (empty where unknown)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor(), "", ()
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    # x86 says vendor_id/flags; ARM says CPU implementer/Features.
    vendor = fields.get("vendor_id") or fields.get("CPU implementer", "")
    model = fields.get("model name", "")
    present = set((fields.get("flags") or fields.get("Features", "")).split())
    return vendor, model, tuple(f for f in _ISA_FLAGS if f in present)


def probe(seed: int = 0) -> dict[str, str]:
    """Checkpoint digests of a small MLP and a small CNN trained here, by model kind.

    Two environments that give equal digests ran the same kernels on these
    models; the data and specs are fixed, so the digests depend on the
    environment alone.
    """
    rng = np.random.default_rng(seed)
    classes = ("a", "b", "c")
    mlp = ModelSpec(
        kind="mlp", input="table", features=tuple(f"f{i}" for i in range(12)),
        classes=classes, hidden=(32, 16), batch_size=16,
    )  # fmt: skip
    cnn = ModelSpec(
        kind="cnn", input="image", image_shape=(3, 12, 12), classes=classes,
        hidden=(6, 8), optimizer="sgd", lr=0.05, batch_size=8,
    )  # fmt: skip
    out: dict[str, str] = {}
    for spec, steps in ((mlp, 40), (cnn, 15)):
        x = rng.standard_normal((64, *spec.input_shape)).astype(np.float32)
        y = rng.integers(0, len(classes), 64)
        out[spec.kind] = checkpoint_digest(train(spec, None, x, y, steps=steps, seed=seed))
    return out
