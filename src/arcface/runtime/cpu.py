"""What this machine's CPU offers for inference, read from ``/proc/cpuinfo`` (Linux; elsewhere: unknown).

Fast paths are chosen on the machine they run on: machines differ (AVX2 only, AVX-512, AVX-512 BF16, AMX;
AMD and Intel), so nothing here is assumed from the model name.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

#: The instruction-set extensions that matter to the engines, in the order reported.
FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, vendor, usable cores and the :data:`FEATURES` it has."""

    model: str
    vendor: str
    cores: int
    features: frozenset[str] = field(default_factory=frozenset)

    @property
    def bf16(self) -> bool:
        """True where bfloat16 arithmetic runs natively (AVX-512 BF16 or AMX-BF16)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.features)

    @property
    def isa(self) -> str:
        """The best matrix path: ``"amx"``, ``"avx512_bf16"``, ``"avx512"``, ``"avx2"`` or ``"baseline"``."""
        for name, need in (
            ("amx", "amx_bf16"),
            ("avx512_bf16", "avx512_bf16"),
            ("avx512", "avx512f"),
            ("avx2", "avx2"),
        ):
            if need in self.features:
                return name
        return "baseline"

    def describe(self) -> str:
        """One line: ``"AMD EPYC, 2 cores, avx512_bf16 (avx2 fma avx512f ...)"``."""
        have = " ".join(f for f in FEATURES if f in self.features) or "none of " + ", ".join(FEATURES[:3])
        return f"{self.model}, {self.cores} cores, {self.isa} ({have})"

    def key(self) -> str:
        """A short digest of what makes timings comparable: model, vendor, cores, features, machine."""
        text = "|".join([self.model, self.vendor, str(self.cores), *sorted(self.features), platform.machine()])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_cpuinfo(text: str, cores: int) -> CpuInfo:
    """A :class:`CpuInfo` from the text of ``/proc/cpuinfo`` (the first processor's entry)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: all cores of a machine report the same
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    model = fields.get("model name") or fields.get("Model") or platform.processor() or "unknown CPU"
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or "unknown"
    return CpuInfo(model=model, vendor=vendor, cores=cores, features=frozenset(flags & set(FEATURES)))


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; all cores where the OS has no such call)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (cores: those this process may run on)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, usable_cores())
