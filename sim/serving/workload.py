"""Request streams: when requests arrive and how long their prompts and answers are.

A workload is three independent draws from one seeded ``numpy.random.Generator``:

* arrival times: a Poisson process at rate ``lambda`` (exponential gaps of mean 1/lambda), a
  bursty renewal process with gamma gaps of the same mean and a chosen coefficient of variation
  (shape 1/CV^2; CV=1 is Poisson, CV>1 is burstier), or the times replayed from a CSV trace;
* prompt lengths and output lengths, each a ``LengthSpec``: a constant, ``uniform:LO:HI``
  (integers, both ends included), ``lognormal:MEAN:SIGMA`` (MEAN is the mean in tokens, SIGMA
  the standard deviation of the log), or ``trace`` (the trace's own column: row by row when the
  trace's arrival times are replayed, resampled with replacement otherwise).

Same seed, same spec => the same arrays, byte for byte. Trace files have the header
``arrival_time_s,prompt_tokens,output_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

TRACE_COLUMNS = ("arrival_time_s", "prompt_tokens", "output_tokens")
MAX_TOKENS = 2**24  # 16.8M tokens per prompt or answer: above every published context window
MAX_SIGMA = 4.0  # lognormal SIGMA: exp(4) ~ 55x spread per standard deviation is already absurd
MAX_TRACE_ROWS = 10_000_000


@dataclass(frozen=True)
class LengthSpec:
    """A distribution of token counts; ``parse`` reads the CLI form."""

    kind: str  # "const" | "uniform" | "lognormal" | "trace"
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, text: str | int) -> LengthSpec:
        text = str(text).strip()
        parts = text.split(":")
        try:
            if len(parts) == 1 and parts[0] == "trace":
                return cls("trace")
            if len(parts) == 1:
                return cls._checked("const", int(parts[0]), 0, text)
            if parts[0] in ("uniform", "lognormal") and len(parts) == 3:
                conv = int if parts[0] == "uniform" else float
                return cls._checked(parts[0], conv(parts[1]), conv(parts[2]), text)
        except ValueError:
            pass
        raise ConfigError(
            f"bad length spec '{text}': use an integer (512), uniform:LO:HI (uniform:64:512), "
            "lognormal:MEAN:SIGMA (lognormal:256:0.8) or trace"
        )

    @classmethod
    def _checked(cls, kind: str, a: float, b: float, text: str) -> LengthSpec:
        ok = {"const": 1 <= a <= MAX_TOKENS, "uniform": 1 <= a <= b <= MAX_TOKENS,
              "lognormal": 1 <= a <= MAX_TOKENS and 0 <= b <= MAX_SIGMA}[kind]
        if not ok:  # NaN fails every comparison, so it lands here too
            raise ConfigError(
                f"length spec '{text}' is out of range: lengths must be 1 to {MAX_TOKENS} "
                f"tokens (and LO <= HI for uniform, 0 <= SIGMA <= {MAX_SIGMA:g} for lognormal)"
            )
        return cls(kind, a, b)

    def sample(self, rng: np.random.Generator, n: int, column: np.ndarray | None) -> np.ndarray:
        if self.kind == "const":
            return np.full(n, int(self.a), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(int(self.a), int(self.b), size=n, endpoint=True, dtype=np.int64)
        if self.kind == "lognormal":
            mu = math.log(self.a) - self.b**2 / 2  # E[exp(N(mu, s^2))] = exp(mu + s^2/2)
            draws = np.clip(np.rint(rng.lognormal(mu, self.b, size=n)), 1, MAX_TOKENS)
            return draws.astype(np.int64)
        if column is None:
            raise ConfigError("length spec 'trace' needs --trace FILE.csv")
        return column[rng.integers(0, len(column), size=n)].astype(np.int64)

    def __str__(self) -> str:
        if self.kind == "const":
            return str(int(self.a))
        if self.kind == "trace":
            return "trace"
        return f"{self.kind}:{self.a:g}:{self.b:g}"


@dataclass(frozen=True)
class ArrivalSpec:
    """``poisson``, ``gamma:CV`` or ``trace`` (replay the trace's arrival times)."""

    kind: str
    cv: float = 1.0

    @classmethod
    def parse(cls, text: str) -> ArrivalSpec:
        parts = str(text).split(":")
        if parts == ["poisson"] or parts == ["trace"]:
            return cls(parts[0])
        if parts[0] == "gamma" and len(parts) == 2:
            try:
                cv = float(parts[1])
            except ValueError:
                cv = -1.0
            if 0.01 <= cv <= 100:  # shape 1/CV^2 in [1e-4, 1e4]: finite gamma draws
                return cls("gamma", cv)
        raise ConfigError(
            f"bad arrival spec '{text}': use poisson, gamma:CV (0.01 <= CV <= 100, e.g. "
            "gamma:2) or trace"
        )

    def __str__(self) -> str:
        return f"gamma:{self.cv:g}" if self.kind == "gamma" else self.kind


@dataclass(frozen=True)
class Workload:
    """Arrays of one request stream, sorted by arrival time."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival_s)


def read_trace(path: str | Path) -> pd.DataFrame:
    """Load and check a CSV trace; columns ``arrival_time_s, prompt_tokens, output_tokens``.

    Every value is checked (finite times >= 0, integer token counts in [1, MAX_TOKENS]); an
    error names the file, the row, the column and the value.
    """
    import pandas as pd

    df = _read_csv(path)
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(
            f"trace '{path}' lacks column(s) {', '.join(missing)}; the header must be "
            + ",".join(TRACE_COLUMNS), field=f"{path}: header")
    if df.empty or len(df) > MAX_TRACE_ROWS:
        raise ConfigError(f"trace '{path}' has {len(df)} rows; it needs 1 to "
                          f"{MAX_TRACE_ROWS} rows", field=f"{path}: rows")
    out = pd.DataFrame({c: _column(df, c, path) for c in TRACE_COLUMNS})
    return out.sort_values("arrival_time_s", kind="stable").reset_index(drop=True)


def _read_csv(path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path, skipinitialspace=True, dtype=str, keep_default_na=False,
                           encoding="utf-8-sig")  # an Excel CSV starts with a BOM
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        why = " ".join(str(exc).split())[:160]
        raise ConfigError(f"cannot read trace '{path}': {why}; give a UTF-8 CSV file with "
                          "header " + ",".join(TRACE_COLUMNS), field=str(path)) from None


def _column(df: pd.DataFrame, col: str, path) -> np.ndarray:
    """One column as checked numbers (float seconds or int64 tokens)."""
    import pandas as pd

    text = df[col].astype(str).str.strip()
    vals = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    if col == "arrival_time_s":
        bad = ~(np.isfinite(vals) & (vals >= 0) & (vals <= 1e9))
        rule = "a finite time in [0, 1e9] s"
    else:
        bad = ~((vals >= 1) & (vals <= MAX_TOKENS) & (np.floor(vals) == vals))
        rule = f"an integer token count in [1, {MAX_TOKENS}]"
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"trace '{path}' row {i + 2} column {col}: '{text.iloc[i][:40]}' is "
                          f"not {rule}; fix or drop the row", field=f"{path}: {col}")
    return vals if col == "arrival_time_s" else vals.astype(np.int64)


def _gaps(rng: np.random.Generator, spec: ArrivalSpec, rate: float, n: int) -> np.ndarray:
    if spec.kind == "poisson":
        return rng.exponential(1.0 / rate, size=n)  # Poisson process: Exp(rate) gaps
    shape = 1.0 / spec.cv**2  # gamma CV = 1/sqrt(shape)
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)  # mean shape*scale = 1/rate


def make_workload(
    n: int,
    rate: float,
    prompt: LengthSpec,
    output: LengthSpec,
    *,
    arrival: ArrivalSpec = ArrivalSpec("poisson"),
    trace: pd.DataFrame | None = None,
    seed: int = 0,
) -> Workload:
    """Draw ``n`` requests. Arrival gaps, prompt and output lengths use one Generator in that
    fixed order, so changing one spec never reshuffles another's draws of a given kind."""
    if n < 1:
        raise ConfigError(f"--num-requests must be >= 1 (got {n})")
    rng = np.random.default_rng(seed)
    if arrival.kind == "trace":
        return _replay(trace, n, prompt, output, rng)
    if not rate > 0:
        raise ConfigError(f"--arrival-rate must be > 0 requests/s (got {rate})")
    times = np.cumsum(_gaps(rng, arrival, rate, n))
    cols = _trace_cols(trace)
    return Workload(times, prompt.sample(rng, n, cols[0]), output.sample(rng, n, cols[1]))


def _trace_cols(trace: pd.DataFrame | None) -> tuple:
    if trace is None:
        return None, None
    return trace["prompt_tokens"].to_numpy(), trace["output_tokens"].to_numpy()


def _replay(trace, n, prompt, output, rng) -> Workload:
    if trace is None:
        raise ConfigError("--arrival trace needs --trace FILE.csv")
    if n > len(trace):
        raise ConfigError(
            f"--num-requests {n} exceeds the trace's {len(trace)} rows; lower it or use a "
            "synthetic --arrival with length spec 'trace' to resample"
        )
    rows = trace.iloc[:n]
    times = rows["arrival_time_s"].to_numpy(dtype=float)
    p = rows["prompt_tokens"].to_numpy() if prompt.kind == "trace" else prompt.sample(rng, n, None)
    o = rows["output_tokens"].to_numpy() if output.kind == "trace" else output.sample(rng, n, None)
    if times[0] < 0:
        raise ConfigError(f"trace arrival times must be >= 0 s (first is {times[0]})")
    return Workload(times, p.astype(np.int64), o.astype(np.int64))
