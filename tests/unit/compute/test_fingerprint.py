"""Environment fingerprints, and bitwise-identical training across ISA levels.

The ISA caps are read when torch, oneDNN and MKL start, so every setting runs
:func:`probe` in a fresh subprocess. An "AVX2 machine" is simulated on this CPU
by capping all three libraries at AVX2, which is what they pick by themselves
on a CPU without AVX-512.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from databright.compute import fingerprint, pinned_environment, probe
from databright.compute._fingerprint import ISA_VARIABLES, _cpu_info

CAPS = (*ISA_VARIABLES, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
PROBE = (
    "import json; from databright.compute import fingerprint, probe; "
    "print(json.dumps({'probe': probe(), 'fingerprint': fingerprint().as_dict()}))"
)


def run_probe(settings: dict[str, str]) -> dict[str, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if k not in CAPS} | settings
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, dict[str, object]] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, dict[str, object]]]:
    pinned = pinned_environment()
    return {
        "native": run_probe({}),
        "avx2": run_probe(AVX2_MACHINE),
        "native pinned": run_probe(pinned),
        "avx2 pinned": run_probe(AVX2_MACHINE | pinned),
        "aten default": run_probe(pinned | {"ATEN_CPU_CAPABILITY": "default"}),
    }


def has_avx512() -> bool:
    return "avx512f" in fingerprint().cpu_flags


@pytest.mark.slow
def test_pinned_environment_trains_identically_on_two_isa_levels(
    runs: dict[str, dict[str, dict[str, object]]],
) -> None:
    native, avx2 = runs["native pinned"], runs["avx2 pinned"]
    assert native["probe"] == avx2["probe"]
    assert native["fingerprint"]["digest"] == avx2["fingerprint"]["digest"]
    assert native["fingerprint"]["pinned"] is True
    assert native["fingerprint"]["cpu_capability"] == "AVX2"


@pytest.mark.slow
def test_without_pinning_isa_levels_change_the_bits(
    runs: dict[str, dict[str, dict[str, object]]],
) -> None:
    if not has_avx512():
        pytest.skip("needs an AVX-512 CPU to compare two native ISA levels")
    native, avx2 = runs["native"], runs["avx2"]
    # MKL's AVX-512 matrix products change the MLP, oneDNN's AVX-512 convolutions the CNN.
    assert native["probe"]["mlp"] != avx2["probe"]["mlp"]
    assert native["probe"]["cnn"] != avx2["probe"]["cnn"]
    # ... and the fingerprints keep such workers out of one redundancy group.
    assert native["fingerprint"]["digest"] != avx2["fingerprint"]["digest"]
    assert native["fingerprint"]["pinned"] is False


@pytest.mark.slow
def test_atens_default_kernels_give_other_bits_and_another_digest(
    runs: dict[str, dict[str, dict[str, object]]],
) -> None:
    # Why the pin is avx2, not default: a CPU without AVX2 falls back to the
    # default kernels, computes other bits, and must not be paired.
    pinned, default = runs["native pinned"], runs["aten default"]
    assert default["fingerprint"]["cpu_capability"] == "DEFAULT"
    assert default["probe"] != pinned["probe"]
    assert default["fingerprint"]["digest"] != pinned["fingerprint"]["digest"]


def test_probe_is_deterministic_in_one_process() -> None:
    first = probe()
    assert first == probe()
    assert set(first) == {"mlp", "cnn"} and all(len(d) == 64 for d in first.values())


def test_fingerprint_reports_this_process() -> None:
    current = fingerprint()
    data = current.as_dict()
    assert data["digest"] == current.digest and len(current.digest) == 64
    assert data["threads"] == 1
    assert isinstance(data["cpu_flags"], list)
    assert current.torch.startswith("2.")
    json.dumps(data)


def test_digest_covers_results_not_cpu_identity() -> None:
    current = fingerprint()
    same_bits = dataclasses.replace(
        current, cpu_vendor="AuthenticAMD", cpu_model="other", cpu_flags=(), pinned=True
    )
    assert same_bits.digest == current.digest
    for change in ({"mkl_cbwr": "NOT SET HERE"}, {"threads": 4}, {"cpu_capability": "ZVECTOR"}):
        other = dataclasses.replace(current, **change)  # type: ignore[arg-type]
        assert other.digest != current.digest, change


def test_pinned_environment_is_a_fresh_copy() -> None:
    pinned = pinned_environment()
    assert pinned["MKL_CBWR"] == "COMPATIBLE" and pinned["OMP_NUM_THREADS"] == "1"
    pinned["MKL_CBWR"] = "AUTO"
    assert pinned_environment()["MKL_CBWR"] == "COMPATIBLE"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\n"
            "flags\t\t: fpu sse4_1 avx2 avx512f\n\nprocessor\t: 1\nvendor_id\t: Other\n",
            ("GenuineIntel", "Xeon", ("sse4_1", "avx2", "avx512f")),
        ),
        (
            "processor\t: 0\nCPU implementer\t: 0x41\nFeatures\t: fp asimd sve\n",
            ("0x41", "", ("asimd", "sve")),
        ),
    ],
)
def test_cpu_info_reads_x86_and_arm(
    tmp_path: Path, text: str, expected: tuple[str, str, tuple[str, ...]]
) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert _cpu_info(path) == expected


def test_cpu_info_without_proc(tmp_path: Path) -> None:
    vendor, model, flags = _cpu_info(tmp_path / "absent")
    assert (model, flags) == ("", ())
