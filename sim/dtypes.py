"""The one table of element sizes: bytes per element of each numeric format.

fp64/fp32/fp16/bf16: IEEE 754-2008 binary64/32/16 and bfloat16 (Google Brain float); tf32 is
stored as fp32 (NVIDIA A100 whitepaper, 2020); fp8 E4M3/E5M2 (OCP 8-bit Floating Point
Specification v1.0, 2023); fp4 E2M1 (OCP Microscaling Formats v1.0, 2023), half a byte per
element. An unknown name is an error, never a default.
"""

from __future__ import annotations

from sim.errors import ConfigError

DTYPE_BYTES: dict[str, float] = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2,
                                 "fp8": 1, "fp4": 0.5}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; ConfigError naming the value and the choices."""
    try:
        return DTYPE_BYTES[dtype]
    except (KeyError, TypeError):
        raise ConfigError(f"dtype '{dtype}' is unknown: must be one of "
                          f"{', '.join(DTYPE_BYTES)}; pass e.g. --dtype bf16") from None
