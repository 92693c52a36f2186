"""The CPU's numeric kernels pinned to its instruction-set class: the same floats on every machine of the class.

    pin()          # before the process's first matrix product (the CLI does it first thing)
    paths()        # {"cpu": "Intel(R) Xeon(R) …", "class": "AVX512", "mkl": "AVX512", "aten": "AVX512"}

On x86, torch's BLAS is MKL (every ``Linear`` and ``matmul``), and MKL picks a code path by CPU model — its
"auto branch", AVX512_E1 on the Xeons here — which round differently from one model to the next. Training
is chaotic enough for that to show: the demo's 100-step copy warm-up from the same seed ended at loss 0.594
on one machine and 0.809 on another (0.540 and 0.559 on the first with MKL forced to its AVX2 or COMPATIBLE
branch), and from there the same demo config started RL from SFT step 325 at 0.33 on the one and step 200
at 0.42 on the other (docs/echo-sweep).
:func:`pin` sets ``MKL_CBWR`` (MKL's conditional numerical reproducibility) to the class's base branch —
``AVX512`` on a CPU with AVX-512 F, BW, DQ and VL, ``AVX2`` on one with AVX2 and FMA — which MKL reads at
its first call, so the process and every process it starts (RL workers, torchrun ranks) compute as any
machine of the class does. A value the user set wins. ATen's own kernels (softmax, norms, attention)
already dispatch by class alone (``torch.backends.cpu.get_cpu_capability()``). MKL's guarantee also needs
the same thread count, which the config fixes (``policy.threads``, the demo's ``threads``).

The base branch costs nothing where MKL's own pick computes the same (here the pinned demo repeats the
unpinned one to every digit it records); pinning a lower class would (AVX2 on this AVX-512 machine: the copy
warm-up 17% slower). No effect on GPUs, nor off x86 (no MKL).

MKL takes its class branches on Intel CPUs only. On an AMD EPYC with AVX-512 (2026-12-08) it reports AUTO
under ``MKL_CBWR=AVX512`` or ``AVX2`` and honours only ``COMPATIBLE``, which doubles a training step of the
demo's model (0.51 → 1.05 s); so :func:`pin` sets nothing on another vendor's CPU, MKL keeps its own pick,
and such a machine trains its own start from the same seed (the demo's pre-training ended at held-out env
CE 6.03 there, 5.50 on the Intel Xeons).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, MutableMapping
from functools import cache
from pathlib import Path

MKL_BRANCH_VARIABLE = "MKL_CBWR"
MKL_PINNING_VENDOR = "GenuineIntel"  # the CPUs whose class branches MKL takes (module docstring)
# MKL's CNR branch codes (mkl_service.h), as mkl_cbwr_get reports them
_BRANCH_NAMES = {1: "auto (not pinned)", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1",
                 8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1",
                 14: "AVX512_E1"}
_CLASSES = (("AVX512", {"avx512f", "avx512bw", "avx512dq", "avx512vl"}), ("AVX2", {"avx2", "fma"}))


def isa_class(flags: Iterable[str]) -> str | None:
    """The instruction-set class of a CPU with these ``/proc/cpuinfo`` flags: "AVX512", "AVX2" or None."""
    have = set(flags)
    return next((name for name, needed in _CLASSES if needed <= have), None)


def pin(environ: MutableMapping[str, str] = os.environ, flags: Iterable[str] | None = None,
        vendor: str | None = None) -> str | None:
    """Set ``MKL_CBWR`` in ``environ`` to this CPU's class (module docstring) unless it is set; return the
    value in effect from now on (None on a CPU of no class, on one whose ``vendor`` — by default this CPU's
    ``vendor_id`` — is not Intel, or off Linux/x86)."""
    if MKL_BRANCH_VARIABLE not in environ and (cpu_vendor() if vendor is None else vendor) == MKL_PINNING_VENDOR:
        wanted = isa_class(cpu_flags() if flags is None else flags)
        if wanted:
            environ[MKL_BRANCH_VARIABLE] = wanted
    return environ.get(MKL_BRANCH_VARIABLE)


def paths() -> dict[str, str | None]:
    """What computes this process's floats: the CPU model, its class, MKL's branch (as MKL itself reports
    it: "auto (not pinned)" when a matrix product ran before :func:`pin`, or nothing set it) and ATen's."""
    import torch

    library = _mkl()
    branch = library.mkl_serv_cbwr_get(1) if library else None
    return {"cpu": cpu_model(), "class": isa_class(cpu_flags()),
            "mkl": None if branch is None else _BRANCH_NAMES.get(branch, f"branch {branch}"),
            "aten": torch.backends.cpu.get_cpu_capability()}


def describe(kernels: dict[str, str | None]) -> str:
    """One line for a report: "Intel(R) Xeon(R) … (AVX512); MKL branch AVX512, ATen AVX512"."""
    mkl = f"MKL branch {kernels['mkl']}" if kernels.get("mkl") else "no MKL"
    cpu = kernels.get("cpu") or "unknown CPU"
    return f"{cpu} ({kernels.get('class') or 'no x86 class'}); {mkl}, ATen {kernels.get('aten')}"


def cpu_flags() -> set[str]:
    return set(_cpuinfo_field("flags").split())


def cpu_model() -> str | None:
    return _cpuinfo_field("model name") or None


def cpu_vendor() -> str:
    return _cpuinfo_field("vendor_id")


def _cpuinfo_field(name: str) -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.partition(":")[2].strip() for line in lines if line.partition(":")[0].strip() == name), "")


@cache
def _mkl() -> ctypes.CDLL | None:
    """torch's own MKL (linked into libtorch_cpu), whose service functions say which branch is in effect."""
    import torch

    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        library = ctypes.CDLL(str(path))
        library.mkl_serv_cbwr_get.argtypes = [ctypes.c_int]
        return library
    except (OSError, AttributeError):
        return None
