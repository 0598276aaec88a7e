"""Fuzzing kit for clustersim's command line: hostile inputs and the verdict on each run.

``invalid_case()`` is a Hypothesis strategy of ``Case`` objects: an argv for one command
with exactly one broken input (a numeric flag negative, zero, huge, NaN, inf or not a
number; a choice that does not exist; a plan that does not divide; a malformed model
config.json, hardware TOML, trace CSV or sweep TOML; an unwritable or clobbering output
path; work too large for this machine), and the names an error message must mention
(the flag, or the file's field). ``run_cli`` calls ``sim.cli.main.main`` in-process with a
timeout guard (SIGALRM) and ``verdict`` classifies the outcome: ok (exit 2, one line or one
JSON error document, no traceback, the input named), traceback, hang, accepted, multiline,
unnamed or bad-status. tests/test_fuzz_cli.py runs a few thousand cases per CI run;
benchmarks/fuzz_cli.py runs 10,000+ and prints the counts.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import signal
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
WORK = Path(tempfile.mkdtemp(prefix="clustersim-fuzz-"))
JUNK = ["abc", "", " ", "nan", "NaN", "inf", "-inf", "+inf", "1e3", "2.5", "0x10", "1_000",
        "--", "8.0", "+-1", "١", "1e400", "None", "[]", "1,2", "1/2", "\x00", "é"]
HUGE = [10**9, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    names: tuple[str, ...]  # the message must mention at least one of these
    what: str  # a short label for reports

    def with_json(self) -> Case:
        return Case((*self.argv, "--json"), self.names, self.what + " --json")


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside the run: a hang (BaseException so code can't swallow it)."""


@dataclass
class Outcome:
    rc: int | None
    out: str
    err: str
    error: str = ""  # traceback text when an exception escaped main()
    hung: bool = False


def run_cli(argv, timeout: float = 60.0) -> Outcome:
    """Run ``clustersim argv`` in this process; stdout/stderr captured, SIGALRM as a guard."""
    from sim.cli.main import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
        return Outcome(rc, out.getvalue(), err.getvalue())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return Outcome(code, out.getvalue(), err.getvalue())
    except CaseTimeout:
        return Outcome(None, out.getvalue(), err.getvalue(), hung=True)
    except BaseException:  # noqa: BLE001 - the point is to catch what escapes
        return Outcome(None, out.getvalue(), err.getvalue(), error=traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def error_message(o: Outcome, as_json: bool) -> tuple[str, str]:
    """(message, problem): the error text, or why the output is not a one-line error."""
    if as_json:
        lines = o.out.strip().splitlines()
        if len(lines) != 1 or o.err.strip():
            return "", "multiline"
        try:
            err = json.loads(lines[0])["error"]
            assert err["type"] and ("flag" in err or "field" in err)
            return f"{err['message']} {err.get('flag') or ''} {err.get('field') or ''}", ""
        except (ValueError, KeyError, TypeError, AssertionError):
            return "", "multiline"
    lines = o.err.strip().splitlines()
    if len(lines) != 1 or o.out.strip() or not lines[0].startswith("clustersim: error: "):
        return "", "multiline"
    return lines[0], ""


def verdict(case: Case, o: Outcome) -> str:
    """'ok' or the kind of failure (traceback, hang, accepted, bad-status, multiline, unnamed)."""
    if o.hung:
        return "hang"
    if o.error or "Traceback" in o.err:
        return "traceback"
    if o.rc == 0:
        return "accepted"
    if o.rc != 2:
        return "bad-status"
    msg, problem = error_message(o, "--json" in case.argv)
    if problem:
        return problem
    low = msg.lower()
    return "ok" if any(n.lower() in low for n in case.names) else "unnamed"


# --- bad values ---------------------------------------------------------------------------
def bad_int(lo: int, hi: int):
    return st.one_of(st.integers(-2**64, lo - 1).map(str), st.sampled_from(HUGE).filter(
        lambda v: v > hi).map(str), st.integers(hi + 1, hi + 10**6).map(str),
        st.sampled_from(JUNK))


def bad_float(lo: float, hi: float, lo_open: bool = True):
    below = st.floats(-1e300, lo, exclude_max=not lo_open, allow_nan=False)
    above = st.floats(hi, 1e300, exclude_min=True, allow_nan=False)
    return st.one_of(below.map(repr), above.map(repr), st.sampled_from(
        ["nan", "inf", "-inf", "1e999", "abc", "", "0x1p3", "--"]))


def _bad_choice():
    return st.sampled_from(["bogus", "", "Continuous", "1", "none ", "nan", "--"])


TRAIN_BASE = ("train", "--model", "tiny-llama", "--system", "dgx-h100", "--gpus", "1", "--tp",
              "1", "--pp", "1", "--global-batch", "2", "--seq", "64")
SERVE_BASE = ("serve", "--model", "tiny-llama", "--system", "dgx-h100", "--tp", "1",
              "--policy", "continuous", "--arrival-rate", "5", "--num-requests", "4",
              "--prompt-tokens", "16", "--output-tokens", "4")
SEARCH_TRAIN_BASE = ("search", "train", "--model", "tiny-llama", "--system", "dgx-h100",
                     "--gpus", "1", "--global-batch", "2", "--seq", "64")
SEARCH_SERVE_BASE = ("search", "serve", "--model", "tiny-llama", "--system", "dgx-h100",
                     "--gpus", "1", "--slo-ttft", "1", "--slo-tpot", "0.1", "--workload",
                     "requests=4,prompt=16,output=4", "--iterations", "1", "--policies",
                     "continuous", "--max-batch", "8")

G, S, T = 2**20, 2**24, 2**32 - 1
TRAIN_FLAGS = {
    "--gpus": ("int", 1, G), "--tp": ("int", 1, G), "--pp": ("int", 1, G),
    "--dp": ("int", 0, G), "--ep": ("int", 1, G), "--cp": ("int", 1, G), "--zero": ("int", 0, 3),
    "--micro-batch": ("int", 1, S), "--global-batch": ("int", 1, S), "--seq": ("int", 1, S),
    "--virtual-stages": ("int", 1, 1024), "--straggler-gpu": ("int", 0, G),
    "--straggler-factor": ("float", 0.0, 1000.0), "--zipf-s": ("float0", 0.0, 100.0),
    "--seed": ("int", 0, T), "--recompute": ("choice",), "--schedule": ("choice",),
    "--overlap": ("choice",), "--engine": ("choice",), "--routing": ("choice",),
}
SERVE_FLAGS = {
    "--tp": ("int", 1, 4096), "--pp": ("int", 1, 4096), "--ep": ("int", 1, 4096),
    "--replicas": ("int", 1, 1024), "--max-batch": ("int", 1, 65536),
    "--block-size": ("int", 1, 4096), "--chunk-tokens": ("int", 1, S),
    "--max-batched-tokens": ("int", 1, S),
    "--batch-timeout": ("float0", 0.0, 3600.0), "--arrival-rate": ("float", 0.0, 1e7),
    "--num-requests": ("int", 1, 10**7), "--speculative-tokens": ("int", 0, 64),
    "--prefill-replicas": ("int", 1, 1024), "--decode-replicas": ("int", 1, 1024),
    "--gpu-memory-utilization": ("float", 0.0, 1.0), "--slo-ttft": ("float", 0.0, 1e6),
    "--slo-tpot": ("float", 0.0, 1e6), "--seed": ("int", 0, T), "--policy": ("choice",),
    "--preemption": ("choice",), "--router": ("choice",),
    "--prompt-tokens": ("spec", ["0", "-3", "abc", "lognormal:inf:1", "lognormal:512:nan",
                                 "lognormal:0:1", "lognormal:512:50", "uniform:5:1",
                                 "uniform:1:99999999999", "uniform:1", "16777217", "trace",
                                 "lognormal:1e300:1", "uniform:-1:4", ":", "lognormal:512:-1"]),
    "--arrival": ("spec", ["gamma:inf", "gamma:0", "gamma:1e-300", "gamma:1e300", "bogus",
                           "gamma:nan", "gamma:", "poisson:1", "gamma:-1", "trace"]),
    "--acceptance-rate": ("spec", ["beta:inf:1", "1.5", "-0.1", "nan", "beta:0:1", "1",
                                   "beta:1", "beta:nan:nan", "beta:1e300:1e300", "x"]),
}
SERVE_FLAGS["--output-tokens"] = SERVE_FLAGS["--prompt-tokens"]
SEARCH_TRAIN_FLAGS = {
    "--gpus": ("spec", ["0", "-1", "abc", "", "1,,x", "99999999", "1,2,-3", "nan", "1e3",
                        ",", "1.5", "2**10"]),
    "--global-batch": ("int", 1, S), "--seq": ("int", 1, S), "--top": ("int", 1, 1000),
    "--objective": ("choice",), "--refine": ("choice",),
}
SEARCH_SERVE_FLAGS = {
    "--gpus": ("int", 1, 4096), "--slo-ttft": ("float", 0.0, 1e6),
    "--slo-tpot": ("float", 0.0, 1e6), "--slo-share": ("float", 0.0, 1.0),
    "--top": ("int", 1, 100), "--iterations": ("int", 1, 40),
    "--workload": ("spec", ["requests=-1", "prompt=abc", "bogus=1", "seed=-1", "arrival=gamma:0",
                            "requests=1e9", "output=lognormal:inf:1", "requests=", "=4",
                            "arrival=trace", "requests=999999999"]),
    "--policies": ("spec", ["bogus", "", ",", "continuous,bogus", "Static"]),
    "--max-batch": ("spec", ["abc", "0", "-4", "", "1e3", "99999999", "8,x"]),
}


def _value(spec):
    kind = spec[0]
    if kind == "int":
        return bad_int(spec[1], spec[2])
    if kind == "float":
        return bad_float(spec[1], spec[2], lo_open=True)
    if kind == "float0":
        return bad_float(spec[1], spec[2], lo_open=False)
    if kind == "choice":
        return _bad_choice()
    return st.sampled_from(spec[1])


def _replace(base: tuple, flag: str, value: str, eq: bool) -> tuple:
    args, i = list(base), 0
    while i < len(args):
        if args[i] == flag:
            del args[i:i + 2]
        else:
            i += 1
    return (*args, f"{flag}={value}") if eq else (*args, flag, value)


@st.composite
def flag_case(draw, base: tuple, flags: dict, label: str):
    flag = draw(st.sampled_from(sorted(flags)))
    value = draw(_value(flags[flag]))
    eq = draw(st.booleans()) or value.startswith("-") or value == ""
    return Case(_replace(base, flag, value, eq), (flag,), f"{label} {flag}={value!r}")


PLAN_CASES = [  # plans that do not divide or do not fit: (extra argv, names)
    (TRAIN_BASE[:5] + ("--gpus", "6", "--tp", "3", "--pp", "1", "--global-batch", "12",
                       "--seq", "64"), ("tp",)),
    (TRAIN_BASE[:5] + ("--gpus", "8", "--tp", "1", "--pp", "8", "--global-batch", "8",
                       "--seq", "64"), ("pp",)),
    (TRAIN_BASE[:5] + ("--gpus", "4", "--tp", "1", "--pp", "1", "--cp", "4", "--global-batch",
                       "4", "--seq", "63"), ("cp", "seq")),
    (TRAIN_BASE[:5] + ("--gpus", "2", "--tp", "1", "--pp", "1", "--global-batch", "3",
                       "--seq", "64"), ("global", "batch", "dp")),
    (TRAIN_BASE[:5] + ("--gpus", "4", "--tp", "2", "--pp", "1", "--dp", "3", "--global-batch",
                       "6", "--seq", "64"), ("dp", "gpus")),
    (("train", "--model", "tiny-moe", "--system", "dgx-h100", "--gpus", "3", "--tp", "1",
      "--pp", "1", "--ep", "3", "--global-batch", "3", "--seq", "64"), ("ep", "expert")),
    (TRAIN_BASE + ("--engine", "des", "--straggler", "99:2"), ("straggler",)),
    (TRAIN_BASE + ("--engine", "des", "--straggler", "0:nan"), ("straggler",)),
    (TRAIN_BASE + ("--engine", "des", "--straggler", "0:2:disk"), ("straggler",)),
    (TRAIN_BASE + ("--engine", "des", "--straggler", "x"), ("straggler",)),
    (TRAIN_BASE + ("--engine", "des", "--straggler", "-1:2"), ("straggler",)),
    (TRAIN_BASE[:-4] + ("--global-batch", "16777216", "--seq", "64", "--engine", "des"),
     ("--global-batch",)),
    (TRAIN_BASE + ("--schedule", "interleaved", "--virtual-stages", "3"), ("virtual", "pp")),
    (SERVE_BASE + ("--speculative-tokens", "2"), ("--draft-model",)),
    (SERVE_BASE + ("--draft-model", "tiny-llama"), ("--speculative-tokens",)),
    (SERVE_BASE + ("--draft-model", "nonexistent-model", "--speculative-tokens", "2"),
     ("nonexistent-model",)),
    (SERVE_BASE + ("--tp", "3"), ("tp",)),
    (("serve", "--model", "llama3-8b", *SERVE_BASE[3:5], "--tp", "8", *SERVE_BASE[7:],
      "--draft-model", "tiny-llama", "--speculative-tokens", "2"), ("--draft-model",)),
    (SERVE_BASE[:-6] + ("--num-requests", "10000000", "--prompt-tokens", "16",
                        "--output-tokens", "16777216"), ("--num-requests", "--output-tokens")),
    (SERVE_BASE + ("--arrival", "trace"), ("--trace", "--arrival")),
    (SERVE_BASE[:-8] + ("--num-requests", "4"), ("--arrival-rate",)),
    (("search", "train", "--model", "tiny-llama", "--system", "dgx-h100", "--gpus", "1",
      "--seq", "64"), ("--global-batch",)),
    (("exercise", "show", "no-such-exercise"), ("no-such-exercise",)),
    (("exercise", "check", "adam-memory", "--answer", "nan"), ("--answer",)),
    (("exercise", "check", "adam-memory", "--answer", "inf"), ("--answer",)),
    (("exercise", "show", "adam-memory", "--seed", "-1"), ("--seed",)),
    (("model", "show", "tiny-llama", "--seq", "0"), ("--seq",)),
    (("model", "show", "tiny-llama", "--seq", "nan"), ("--seq",)),
    (("model", "show", "no-such-model"), ("no-such-model",)),
    (("hardware", "show", "no-such-gpu"), ("no-such-gpu",)),
    (("calibrate", "--threads", "0"), ("--threads",)),
    (("calibrate", "--threads", "-4"), ("--threads",)),
    (("validate", "--threads", "0"), ("--threads",)),
    (("validate", "--repeats", "0"), ("--repeats",)),
    (("validate", "--stages", "bogus"), ("--stages",)),
    (("report", "--only", "no_such_scenario", "--out", str(WORK / "rep")), ("no_such_scenario",)),
    (("train", "--model", "tiny-llama"), ("--system", "--gpus", "required")),
    (("serve",), ("required", "--model")),
    (("nosuchcommand",), ("nosuchcommand",)),
    (("train", "--bogus-flag", "1"), ("--bogus-flag", "required")),
]


def plan_cases():
    return st.sampled_from([Case(a, n, "plan " + " ".join(a[:1])) for a, n in PLAN_CASES])


def output_cases():
    """Unwritable, clobbering or ill-named output paths for every writer."""
    model = str(ROOT / "tests" / "data" / "hf" / "llama3-8b" / "config.json")
    bad_paths = ["/dev/null/x.json", "/proc/no/such/x.json", ""]
    des = ("train", "--model", "tiny-llama", "--system", "dgx-h100", "--gpus", "1", "--tp", "1",
           "--pp", "1", "--global-batch", "2", "--seq", "64", "--engine", "des")
    cases = []
    for p in bad_paths:
        cases += [Case((*des, "--trace", p), ("--trace",), f"trace {p}"),
                  Case((*des, "--timeline", p + ".png" if p else p), ("--timeline",),
                       f"timeline {p}"),
                  Case((*SERVE_BASE, "--charts", p + "/d" if p else p), ("--charts",),
                       f"charts {p}"),
                  Case(("calibrate", "--out", p), ("--out",), f"calibrate {p}"),
                  Case(("validate", "--out-dir", p + "/d" if p else p), ("--out-dir",),
                       f"validate {p}"),
                  Case(("report", "--out", p + "/d" if p else p, "--only", "roofline"),
                       ("--out",), f"report {p}")]
    cases += [Case(("train", "--model", model, "--system", "dgx-h100", "--gpus", "8", "--tp", "1",
                    "--pp", "1", "--global-batch", "8", "--seq", "64", "--engine", "des",
                    "--trace", model), ("--trace",), "trace clobbers model"),
              Case((*des, "--timeline", str(WORK / "t.json")), ("--timeline",), "timeline.json"),
              Case((*des, "--trace", str(WORK / "same.png"), "--timeline",
                    str(WORK / "same.png")), ("--trace",), "trace == timeline")]
    return st.sampled_from(cases)


# --- files --------------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    """A tiny TOML writer: scalars first, then one [table] per nested dict."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


BAD_SCALARS = [-1, 0, 2**40, 2**63, -2**63, 3.5, float("nan"), float("inf"), "32", "", [1],
               {"a": 1}, True, False, "abc", [], 1e308]


def _write(suffix: str, data: str | bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, dir=WORK)
    with open(fd, "wb") as fh:
        fh.write(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return Path(name)


def _hf(name: str) -> dict:
    return json.loads((ROOT / "tests" / "data" / "hf" / name / "config.json").read_text())


HF_SHAPE = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size", "num_key_value_heads", "max_position_embeddings", "rope_theta",
            "rope_scaling", "model_type", "tie_word_embeddings", "num_local_experts",
            "num_experts_per_tok", "head_dim", "sliding_window", "n_routed_experts",
            "kv_lora_rank", "moe_intermediate_size", "first_k_dense_replace", "scoring_func",
            "n_embd", "n_layer", "n_head", "n_positions", "activation_function"]
HF_INVALID = {  # values invalid for the field whatever the rest of the file says
    "rope_scaling": [[1], "linear", 3, {"factor": "abc"}, {"factor": float("nan")},
                     {"type": [1]}, {"factor": -2}],
    "rope_theta": ["10000", 0, -1, float("inf"), float("nan"), [1], True],
    "model_type": [["llama"], 3, "bogus", {"a": 1}, True, ""],
    "tie_word_embeddings": ["yes", 1, [True]], "scoring_func": [1, ["sigmoid"]],
    "activation_function": [3, ["gelu"], "relu"],
}


@st.composite
def hf_case(draw):
    name = draw(st.sampled_from(["llama3-8b", "mixtral-8x7b", "deepseek-v2-lite", "gpt2-124m",
                                 "qwen2-7b", "mistral-7b"]))
    raw = _hf(name)
    read = {"model_type"} | ({"activation_function"} if name.startswith("gpt2") else
                             {"rope_theta", "rope_scaling", "tie_word_embeddings"})
    read |= {"scoring_func"} if name.startswith("deepseek") else set()
    unread = {"sliding_window"} if name.startswith("qwen2") else set()  # Qwen2 ignores it
    keys = [k for k in HF_SHAPE if (k in raw or k in read) and k not in unread]
    key = draw(st.sampled_from(keys))
    if key in HF_INVALID:
        bad = draw(st.sampled_from(HF_INVALID[key]))
    else:
        bad = draw(st.sampled_from([x for x in BAD_SCALARS if x != 0 or key in
                                    ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "intermediate_size", "vocab_size", "n_embd", "n_layer",
                                     "n_head", "max_position_embeddings", "n_positions",
                                     "num_local_experts", "num_experts_per_tok",
                                     "n_routed_experts", "kv_lora_rank",
                                     "moe_intermediate_size")]))
    raw[key] = bad
    path = _write(".json", json.dumps(raw))
    cmd = draw(st.sampled_from(["show", "train"]))
    argv = (("model", "show", str(path)) if cmd == "show" else
            ("train", "--model", str(path), "--system", "dgx-h100", "--gpus", "8", "--tp", "1",
             "--pp", "1", "--global-batch", "8", "--seq", "128"))
    return Case(argv, (key, str(path)), f"config.json {key}={bad!r}")


HW_SYSTEM = {"name": "fuzz-system", "kind": "system", "accelerator": "h100-sxm",
             "gpus_per_node": 8, "price_per_gpu_hour": "2.99 USD/h",
             "intra_node": {"link": "nvlink4", "links_per_gpu": 18, "topology": "switch"},
             "inter_node": {"nic_link": "ib-ndr", "nics_per_node": 8},
             "scale_out": {"topology": "rail-optimized", "nodes_per_leaf": 32,
                           "oversubscription": 1.0, "switch_latency": "130 ns"},
             "sources": {"gpus_per_node": "fuzz", "intra_node": "fuzz", "inter_node": "fuzz",
                         "scale_out": "fuzz", "price_per_gpu_hour": "fuzz"}}
HW_KEYS = {"kind": ["accelerator", 1, [1], -1, True, float("inf"), "", "bogus"],
           "accelerator": [1, [1], "no-such-gpu", True, {"a": 1}, ""],
           "gpus_per_node": BAD_SCALARS, "price_per_gpu_hour": ["-1 USD/h", "abc", 3, "inf USD/h",
                                                                "1e400 USD/h", [1]],
           "intra_node.links_per_gpu": BAD_SCALARS,
           "intra_node.link": [1, "no-such-link", [1], ""],
           "intra_node.topology": ["bogus", 1, [1]],
           "inter_node.nics_per_node": BAD_SCALARS + [3],
           "scale_out.nodes_per_leaf": BAD_SCALARS,
           "scale_out.oversubscription": [0.5, -1, float("nan"), float("inf"), "2", [1]],
           "scale_out.switch_latency": ["-1 ns", "abc", 5, "1 GB"],
           "scale_out.topology": ["bogus", 3], "name": [1, [1], True]}


@st.composite
def hardware_case(draw):
    key = draw(st.sampled_from(sorted(HW_KEYS)))
    bad = draw(st.sampled_from(HW_KEYS[key]))
    doc = json.loads(json.dumps(HW_SYSTEM))
    if "." in key:
        top, sub = key.split(".")
        doc[top][sub] = bad
    else:
        doc[key] = bad
    path = _write(".toml", to_toml(doc))
    leaf = key.split(".")[-1]
    cmd = draw(st.sampled_from(["show", "train", "serve"]))
    argv = {"show": ("hardware", "show", str(path)),
            "train": ("train", "--model", "tiny-llama", "--system", str(path), "--gpus", "8",
                      "--tp", "1", "--pp", "1", "--global-batch", "8", "--seq", "64"),
            "serve": (*SERVE_BASE[:3], "--system", str(path), *SERVE_BASE[5:])}[cmd]
    return Case(argv, (leaf, str(path)), f"hardware {key}={bad!r}")


TRACE_BAD = ["abc", "nan", "inf", "-inf", "-1", "0", "1e30", "99999999999999999999999", "",
             "1.5", "0x10", "16777217", "None", "\x00"]


@st.composite
def trace_case(draw):
    n = draw(st.integers(1, 6))
    rows = [[f"{0.1 * i:.3f}", "16", "4"] for i in range(n)]
    col = draw(st.integers(0, 2))
    bad = draw(st.sampled_from(TRACE_BAD))
    if col == 0 and bad in ("0", "1.5", "16777217", "1e30") or col > 0 and bad == "1e30":
        bad = "nan" if col == 0 else "1e30"
    rows[draw(st.integers(0, n - 1))][col] = bad
    header = "arrival_time_s,prompt_tokens,output_tokens"
    path = _write(".csv", header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    names = ("arrival_time_s", "prompt_tokens", "output_tokens")
    argv = ("serve", "--model", "tiny-llama", "--system", "dgx-h100", "--tp", "1", "--policy",
            "continuous", "--trace", str(path))
    return Case(argv, (names[col], str(path)), f"trace {names[col]}={bad!r}")


SWEEP_BASE = {"kind": "train", "base": {"model": "tiny-llama", "system": "dgx-h100", "gpus": 1,
                                        "global_batch": 2, "seq": 64},
              "grid": {"tp": [1]}}
SWEEP_BAD = {"kind": [1, "bogus", [1], True], "workers": [0, -1, "2", 2.5, True, 10**6],
             "dask_scheduler": ["tcp://", "http://x", 3, "tcp://host:99999", "", [1]],
             "out": [3, [1]], "name": [3, [1]], "base": [[1], "x", 3],
             "grid": [[1], "x"], "points": ["x", [1], {"a": 1}],
             "base.gpus": BAD_SCALARS, "base.global_batch": BAD_SCALARS, "base.seq": BAD_SCALARS,
             "base.model": [1, [1], ""], "base.zero": [5, -1, "1"],
             "base.engine": ["bogus", 1], "base.seed": [-1, 2**40, "1", 1.5],
             "grid.tp": [{"a": 1}, "1", 1, [], ["x"], [-1], [2**40]],
             "grid.recompute": [["bogus"], "none"], "base.bogus_key": [1],
             "grid.gpus": [list(range(1, 1000))]}


@st.composite
def sweep_case(draw):
    key = draw(st.sampled_from(sorted(SWEEP_BAD)))
    bad = draw(st.sampled_from(SWEEP_BAD[key]))
    doc = json.loads(json.dumps(SWEEP_BASE))
    if key == "grid.gpus":  # a huge product: 999 x 999 x 200 points
        doc["grid"] = {"gpus": bad, "seq": list(range(1, 1000)), "seed": list(range(200))}
    elif "." in key:
        top, sub = key.split(".")
        doc[top][sub] = bad
    else:
        doc[key] = bad
    try:
        text = to_toml(doc)
    except TypeError:
        return None
    path = _write(".toml", text)
    leaf = key.split(".")[-1]
    names = (leaf, "grid", str(path)) if key == "grid.gpus" else (leaf, str(path))
    return Case(("sweep", str(path), "--out", str(WORK / "sweep-out.csv")), names,
                f"sweep {key}={bad!r}")


def hostile_files():
    """Every file of tests/data/hostile against the command that reads its kind."""
    cases = []
    for path in sorted(HOSTILE.iterdir()) if HOSTILE.is_dir() else []:
        if path.name == "README.md":
            continue
        p = str(path)
        cases += [Case(("model", "show", p), (p, path.name), f"hostile model {path.name}"),
                  Case(("hardware", "show", p), (p, path.name), f"hostile hw {path.name}"),
                  Case((*SERVE_BASE[:9], "--trace", p), (p, path.name),
                       f"hostile trace {path.name}"),
                  Case(("sweep", p, "--out", str(WORK / "h.csv")), (p, path.name),
                       f"hostile sweep {path.name}"),
                  Case(("stack", "show", p), (p, path.name), f"hostile stack {path.name}"),
                  Case(("train", "--model", p, "--system", "dgx-h100", "--gpus", "1", "--tp",
                        "1", "--pp", "1", "--global-batch", "1", "--seq", "64"),
                       (p, path.name), f"hostile train {path.name}")]
    return cases


def sweep_flag_cases():
    good = _write(".toml", to_toml(SWEEP_BASE))
    vals = {"--workers": ["0", "-1", "abc", "1e3", "65", "2.5", "nan"],
            "--dask-scheduler": ["tcp://", "http://x", "123", "tcp://host:99999", "", "x y"],
            "--out": ["/dev/null/x.csv", "x.txt", str(good), "/proc/x/y.csv"]}
    return st.sampled_from([Case(("sweep", str(good), *(
        (f, v) if not v.startswith("-") and v else (f"{f}={v}",))), (f,), f"sweep {f}={v!r}")
        for f, vals_ in vals.items() for v in vals_])


def invalid_case():
    """Every kind of invalid input, weighted toward the big flag tables."""
    return st.one_of(
        flag_case(TRAIN_BASE, TRAIN_FLAGS, "train"), flag_case(SERVE_BASE, SERVE_FLAGS, "serve"),
        flag_case(SEARCH_TRAIN_BASE, SEARCH_TRAIN_FLAGS, "search train"),
        flag_case(SEARCH_SERVE_BASE, SEARCH_SERVE_FLAGS, "search serve"),
        plan_cases(), output_cases(), sweep_flag_cases(),
        hf_case().filter(lambda c: c is not None), hardware_case(), trace_case(),
        sweep_case().filter(lambda c: c is not None), auto_flag_case(),
    )


# --- every typed flag of every command, read from the parser ------------------------------
AUTO_BASES = {
    ("train",): TRAIN_BASE, ("serve",): SERVE_BASE, ("search", "train"): SEARCH_TRAIN_BASE,
    ("search", "serve"): SEARCH_SERVE_BASE, ("model", "show"): ("model", "show", "tiny-llama"),
    ("exercise", "show"): ("exercise", "show", "adam-memory"),
    ("exercise", "check"): ("exercise", "check", "adam-memory", "--answer", "1"),
    ("explore", "attention"): ("explore", "attention", "--model", "tiny-llama", "--contexts",
                               "64,128"),
    ("explore", "kv"): ("explore", "kv", "--model", "tiny-llama", "--system", "dgx-h100",
                        "--tp", "1", "--contexts", "64"),
    ("explore", "moe"): ("explore", "moe", "--model", "mixtral-8x7b", "--system", "dgx-h100"),
    ("calibrate",): ("calibrate", "--out", str(WORK / "never.toml")),
    ("validate",): ("validate", "--out-dir", str(WORK / "never")),
}


def typed_flags() -> list[tuple[tuple, str, tuple]]:
    """(command path, flag, spec) for every flag built with sim.cli.flags int/float builders."""
    import argparse

    from sim.cli.main import build_parser

    out = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif getattr(action.type, "spec", None) and action.option_strings:
                out.append((path, action.option_strings[0], action.type.spec))

    walk(build_parser(), ())
    return [(p, f, s) for p, f, s in out if p in AUTO_BASES]


def _bad_for(spec):
    if spec[0] == "int":
        lo, hi = spec[1], spec[2]
        return bad_int(-2**63 if lo is None else lo, 2**63 if hi is None else hi)
    lo, hi, lo_open, hi_open = spec[1:]
    lo = -1e300 if lo is None else lo
    hi = 1e300 if hi is None else hi
    below = st.floats(-1e300, lo, exclude_max=not lo_open, allow_nan=False)
    above = st.floats(hi, 1e300, exclude_min=not hi_open, allow_nan=False)
    return st.one_of(below.map(repr), above.map(repr),
                     st.sampled_from(["nan", "inf", "-inf", "1e999", "abc", "", "--"]))


@st.composite
def auto_flag_case(draw):
    """A bad value for any typed flag of any command (new flags are fuzzed automatically)."""
    path, flag, spec = draw(st.sampled_from(typed_flags()))
    value = draw(_bad_for(spec))
    eq = draw(st.booleans()) or value.startswith("-") or value == ""
    return Case(_replace(AUTO_BASES[path], flag, value, eq), (flag,),
                f"{' '.join(path)} {flag}={value!r}")
