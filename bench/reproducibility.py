"""Which ISA settings give bitwise-identical training: the matrix behind docs/reproducibility.md.

Each row starts a fresh process with some of ``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR`` and ``MKL_ENABLE_INSTRUCTIONS`` set (they
are read when the libraries start) and trains the small MLP and CNN of
``databright.compute.probe``. The table shows the first 12 hex digits of each
checkpoint digest, the probe's training time, and which rows agree with the
pinned environment (``pinned_environment()``) on this CPU. Rows marked
"AVX2 machine" cap all three libraries at AVX2, which is what they choose on
their own on a CPU without AVX-512.

Run: ``.venv/bin/python bench/reproducibility.py``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from databright.compute import fingerprint, pinned_environment  # noqa: E402

CAPS = (
    "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS",
)  # fmt: skip
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}  # fmt: skip
PINNED = pinned_environment()
ROWS: list[tuple[str, dict[str, str]]] = [
    ("native (nothing set)", {}),
    ("ATEN_CPU_CAPABILITY=default", {"ATEN_CPU_CAPABILITY": "default"}),
    ("ATEN_CPU_CAPABILITY=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}),
    ("ONEDNN_MAX_CPU_ISA=SSE41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    ("ONEDNN_MAX_CPU_ISA=AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}),
    ("MKL_ENABLE_INSTRUCTIONS=AVX2", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    ("AVX2 machine", AVX2_MACHINE),
    ("pinned", PINNED),
    ("pinned, AVX2 machine", AVX2_MACHINE | PINNED),
    ("pinned, ATEN avx512", PINNED | {"ATEN_CPU_CAPABILITY": "avx512"}),
    ("pinned, ATEN default", PINNED | {"ATEN_CPU_CAPABILITY": "default"}),
    ("pinned, MKL SSE4_2", PINNED | {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),
    ("pinned, oneDNN AVX2", PINNED | {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("pinned, MKL_CBWR=AVX2", PINNED | {"MKL_CBWR": "AVX2"}),
]
SCRIPT = (
    "import json, time; from databright.compute import fingerprint, probe; "
    "t = time.perf_counter(); d = probe(); t = time.perf_counter() - t; "
    "print(json.dumps({'probe': d, 'seconds': t, 'cap': fingerprint().cpu_capability}))"
)


def run(settings: dict[str, str]) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in CAPS} | settings
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    here = fingerprint()
    print(f"CPU: {here.cpu_vendor} {here.cpu_model}; torch {here.torch}")
    print(f"ISA flags: {' '.join(here.cpu_flags)}\n")
    results = [(name, run(settings)) for name, settings in ROWS]
    reference = dict(results)["pinned"]["probe"]
    print(f"{'setting':32} {'ATen':8} {'mlp':12} {'cnn':12} {'probe s':>7}  = pinned")
    for name, result in results:
        digests = result["probe"]
        assert isinstance(digests, dict)
        same = "yes" if digests == reference else "no"
        print(
            f"{name:32} {result['cap']!s:8} {digests['mlp'][:12]:12} {digests['cnn'][:12]:12} "
            f"{result['seconds']:7.2f}  {same}"
        )


if __name__ == "__main__":
    main()
