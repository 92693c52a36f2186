"""The CPU's numeric kernels pinned to its instruction-set class (echo_rl.cpu_kernels): what the CLI's
processes compute with, as MKL itself reports it, and the user's own choice winning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from echo_rl.cpu_kernels import MKL_PINNING_VENDOR as INTEL, cpu_flags, cpu_vendor, describe, isa_class, pin

AVX512 = {"fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "sse4_2"}


def test_the_class_is_the_best_one_all_of_whose_instructions_the_cpu_has():
    assert isa_class(AVX512) == "AVX512"
    assert isa_class(AVX512 - {"avx512vl"}) == "AVX2"  # AVX-512 F without VL (Knights Landing): its kernels differ
    assert isa_class({"avx2"}) is None and isa_class(set()) is None


def test_pin_sets_the_class_where_nothing_is_set_and_leaves_a_users_choice():
    environ: dict[str, str] = {}
    assert pin(environ, AVX512, INTEL) == "AVX512" and environ == {"MKL_CBWR": "AVX512"}
    environ = {"MKL_CBWR": "COMPATIBLE"}
    assert pin(environ, AVX512, INTEL) == "COMPATIBLE" and environ == {"MKL_CBWR": "COMPATIBLE"}
    environ = {}
    assert pin(environ, {"sse2"}, INTEL) is None and environ == {}


def test_pin_leaves_mkl_alone_on_a_cpu_whose_class_branches_mkl_ignores():
    environ: dict[str, str] = {}
    assert pin(environ, AVX512, "AuthenticAMD") is None and environ == {}
    environ = {"MKL_CBWR": "COMPATIBLE"}  # the one branch MKL honours there, if the user wants it
    assert pin(environ, AVX512, "AuthenticAMD") == "COMPATIBLE"


PROBE = """
import json, sys
{before}
from echo_rl.cli import main
main(["--version"])
import torch
torch.ones(8, 8) @ torch.ones(8, 8)
from echo_rl.cpu_kernels import paths
print(json.dumps(paths()))
"""


def _probe(env: dict[str, str], before: str = "") -> dict[str, str | None]:
    run = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(run.stdout.splitlines()[-1])


@pytest.fixture
def clean_env():
    if not isa_class(cpu_flags()):
        pytest.skip("this CPU has no x86 class to pin")
    return {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}


def test_a_cli_process_computes_on_its_classs_mkl_branch_unless_the_user_chose_one(clean_env):
    seen = _probe(clean_env)
    if seen["mkl"] is None:
        pytest.skip("this torch has no MKL")
    # MKL's own pick where it ignores the class branches (another vendor's CPU): pin() sets nothing there
    assert seen["mkl"] == (seen["class"] if cpu_vendor() == INTEL else "auto (not pinned)")
    assert seen["class"] == isa_class(cpu_flags())
    assert seen["aten"] and seen["cpu"]
    assert _probe({**clean_env, "MKL_CBWR": "COMPATIBLE"})["mkl"] == "COMPATIBLE"
    assert "MKL branch" in describe(seen) and seen["class"] in describe(seen)


def test_a_product_before_the_pin_leaves_mkl_on_its_own_branch_and_the_report_says_so(clean_env):
    seen = _probe(clean_env, before="import torch; torch.ones(8, 8) @ torch.ones(8, 8)")
    if seen["mkl"] is None:
        pytest.skip("this torch has no MKL")
    assert seen["mkl"] == "auto (not pinned)"
