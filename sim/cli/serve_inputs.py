"""Typed inputs of ``clustersim serve`` and trace-replay semantics.

With ``--trace FILE.csv`` the arrivals, the request count and both length columns come from
the trace unless a flag overrides them explicitly; without a trace ``--arrival-rate``,
``--num-requests``, ``--prompt-tokens`` and ``--output-tokens`` are required. An explicit
numeric length together with ``--trace`` prints a one-line notice on stderr, and the run's
``config.sources`` records where each value came from ("trace", "flag" or "default").

Before the run, the simulated work is estimated (one event per request arrival, admission
and completion plus one per generated token, the engine's per-token cost: an upper bound
when batches are small) and refused above ``sim.limits.max_events``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from sim.cli.flags import FlagValueError
from sim.errors import ConfigError, FlagError

MAX_REPLICAS = 1024
MAX_BATCH = 65536
MAX_REQUESTS = 10_000_000
MAX_SPEC_TOKENS = 64  # draft windows beyond a few dozen tokens are never accepted in full
MAX_TOKENS = 2**24  # = sim.serving.workload.MAX_TOKENS (not imported: keeps pandas out of --help)


def _wrap(parse, text: str):
    try:
        return parse(text)
    except ConfigError as exc:
        raise FlagValueError(str(exc)) from None


def length_spec(text: str) -> str:
    """argparse type: a LengthSpec (kept as its text; parsed and range-checked here)."""
    from sim.serving.workload import LengthSpec

    return str(_wrap(LengthSpec.parse, text))


def arrival_spec(text: str) -> str:
    """argparse type: poisson, gamma:CV or trace."""
    from sim.serving.workload import ArrivalSpec

    return str(_wrap(ArrivalSpec.parse, text))


def acceptance_spec(text: str) -> str:
    """argparse type: a rate in [0, 1) or beta:ALPHA:BETA."""
    from sim.serving.api import acceptance_rates

    _wrap(lambda t: acceptance_rates(t, 1, 0), text)
    return text


@dataclass
class WorkloadFlags:
    num_requests: int
    arrival_rate: float | None
    arrival: str
    prompt_tokens: str
    output_tokens: str
    sources: dict = field(default_factory=dict)


def _require(args, name: str, flag: str) -> None:
    if getattr(args, name) is None:
        raise FlagError(f"{flag} is required without --trace FILE.csv (or give --trace to "
                        "replay a recorded workload)", flag=flag)


def resolve_workload_flags(args) -> WorkloadFlags:
    """Decide every workload value and its source; check the estimated work."""
    if args.trace is None:
        for name, flag in (("arrival_rate", "--arrival-rate"), ("num_requests", "--num-requests"),
                           ("prompt_tokens", "--prompt-tokens"),
                           ("output_tokens", "--output-tokens")):
            if name != "arrival_rate" or (args.arrival or "poisson") != "trace":
                _require(args, name, flag)
        if args.arrival == "trace":
            raise FlagError("--arrival trace needs --trace FILE.csv", flag="--arrival")
        for name in ("prompt_tokens", "output_tokens"):
            if getattr(args, name) == "trace":
                flag = "--" + name.replace("_", "-")
                raise FlagError(f"{flag} trace needs --trace FILE.csv (or give a length such "
                                "as 512)", flag=flag)
        w = WorkloadFlags(args.num_requests, args.arrival_rate, args.arrival or "poisson",
                          args.prompt_tokens, args.output_tokens,
                          {k: "flag" for k in ("arrival", "num_requests", "prompt_tokens",
                                               "output_tokens")})
        w.sources["arrival"] = "flag" if args.arrival else "default"
    else:
        w = _from_trace(args)
    check_work(w, args)
    return w


def _from_trace(args) -> WorkloadFlags:
    from sim.serving.workload import read_trace

    rows = len(read_trace(args.trace))
    arrival = args.arrival or "trace"
    if arrival != "trace" and args.arrival_rate is None:
        raise FlagError(f"--arrival {arrival} draws new arrival times and needs --arrival-rate "
                        "(or drop --arrival to replay the trace's times)", flag="--arrival-rate")
    n = args.num_requests if args.num_requests is not None else rows
    if arrival == "trace" and n > rows:
        raise FlagError(f"--num-requests {n} exceeds the trace's {rows} rows; lower it or drop "
                        "it to replay the whole trace", flag="--num-requests")
    sources = {"arrival": "trace" if arrival == "trace" else "flag",
               "num_requests": "flag" if args.num_requests is not None else "trace"}
    lengths = {}
    for name in ("prompt_tokens", "output_tokens"):
        value = getattr(args, name)
        lengths[name] = value if value is not None else "trace"
        sources[name] = "trace" if lengths[name] == "trace" else "flag"
        if sources[name] == "flag":
            flag = "--" + name.replace("_", "-")
            print(f"clustersim: notice: {flag} {value} overrides the trace's {name} column "
                  f"(drop {flag} to replay the trace's own lengths)", file=sys.stderr)
    return WorkloadFlags(n, args.arrival_rate, arrival, lengths["prompt_tokens"],
                         lengths["output_tokens"], sources)


def mean_tokens(spec: str, trace_mean: float) -> float:
    from sim.serving.workload import LengthSpec

    s = LengthSpec.parse(spec)
    return {"const": s.a, "uniform": (s.a + s.b) / 2, "lognormal": s.a}.get(s.kind, trace_mean)


# fast-forward: arrival, routing, a prefill iteration, a finishing step and 2-3 decode runs
# of two events each per request (measured: 36,724 SimPy events for 3,000 requests at 4 req/s)
FAST_FORWARD_EVENTS = 24


def check_work(w: WorkloadFlags, args) -> None:
    """Refuse a run whose estimated events exceed this machine's budget."""
    from sim.limits import check_events, check_memory

    trace_mean = 0.0
    if "trace" in (w.prompt_tokens, w.output_tokens):
        from sim.serving.workload import read_trace

        trace_mean = float(read_trace(args.trace)["output_tokens"].mean())
    per_request = 3 + mean_tokens(w.output_tokens, trace_mean) * (1 + args.speculative_tokens)
    if not getattr(args, "no_fast_forward", False):  # decode runs cost O(1) events each:
        per_request = min(per_request, FAST_FORWARD_EVENTS)  # O(events per request)
    check_events(w.num_requests * per_request, "this serving run",
                 "--num-requests or --output-tokens")
    check_memory(w.num_requests * 4096.0, "this serving run's request records",
                 "--num-requests")  # ~4 KiB per Request object and its result row
