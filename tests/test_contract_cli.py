"""CLI contract audit: every command, flag and JSON field that issues 2-8 spell out, called
exactly as the issues spell them.

Most calls go through ``sim.cli.main.main`` in-process (the same function the console script
runs) with stdout/stderr captured; a few go through the real installed ``clustersim`` script
(or ``python -m sim.cli.main`` where it is not installed) to prove the entry point itself
keeps the contract. Each JSON command must print exactly one JSON document on stdout; the
fields the issue names must be present with the right type and sane values. Gaps found are
listed in docs/contract-audit.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli.main import build_parser, main

SCRIPT = Path(sys.executable).parent / "clustersim"
ENTRY = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sim.cli.main"]

ACCELERATORS = ["v100-sxm2-32gb", "a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm", "h100-pcie",
                "h800-sxm", "h200-sxm", "b200", "mi300x"]
SYSTEMS = ["dgx-v100", "dgx-a100-40gb", "dgx-a100-80gb", "dgx-h100", "hgx-h200",
           "gb200-nvl72", "mi300x-8"]
PRESETS = ["gpt2-124m", "gpt3-175b", "llama2-7b", "llama2-70b", "llama3-8b", "llama3-70b",
           "llama3-405b", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b", "deepseek-v2-lite",
           "deepseek-v3"]
TRAIN_FIELDS = {
    "step_time_s": float, "tokens_per_s": float, "model_flops_per_step": float,
    "hardware_flops_per_step": float, "tflops_per_gpu": float, "mfu": float, "hfu": float,
    "memory_per_gpu_bytes": (int, float), "memory_breakdown_bytes": dict, "fits": bool,
    "time_breakdown_s": dict, "bottleneck": str, "config": dict,
}
MEMORY_PARTS = {"weights", "gradients", "optimizer", "activations", "other"}
TIME_PARTS = {"compute", "communication_exposed", "pipeline_bubble"}
SERVE_FIELDS = {
    "requests_completed": int, "requests_rejected": int, "throughput_tokens_per_s": float,
    "throughput_requests_per_s": float, "ttft_s": dict, "tpot_s": dict, "e2e_s": dict,
    "preemptions": int, "kv_cache_peak_utilization": float, "saturated": bool, "config": dict,
}
STATS = ("mean", "p50", "p90", "p99")


# ---------------------------------------------------------------- helpers


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run one command in-process; argparse's own exits count as the exit status."""
    capsys.readouterr()
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return rc, out, err


def cli_json(capsys, *argv: str):
    """Run with --json: status 0 and stdout is exactly one JSON document (json.loads rejects
    trailing data, so a second document or a stray print fails here)."""
    rc, out, err = cli(capsys, *argv, "--json")
    assert rc == 0, f"{' '.join(argv)} exited {rc}: {err.strip()[-500:]}"
    return json.loads(out)


def script(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, *argv], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(rc: int, out: str, err: str) -> None:
    """Exit 2 and one line: on stderr, or (under --json) an {"error": ...} document on stdout."""
    assert rc == 2, f"exit status {rc}, want 2 (stderr: {err.strip()[-300:]})"
    assert "Traceback" not in err + out
    text = out if out.strip() else err
    assert len(text.strip().splitlines()) == 1, f"error is not one line: {text!r}"
    if out.strip():
        e = json.loads(out)["error"]
        assert e["type"] and e["message"] and ("flag" in e or "field" in e)
        assert err.strip() == ""


def assert_fields(doc: dict, fields: dict) -> None:
    missing = sorted(set(fields) - set(doc))
    assert not missing, f"missing fields {missing}"
    for key, kind in fields.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds:
            kinds = (*kinds, int)  # a JSON number that happens to be whole
        if bool not in kinds:
            assert not isinstance(doc[key], bool), f"{key} is a bool"
        assert isinstance(doc[key], kinds), f"{key} is {type(doc[key]).__name__}"


def flat(obj, out=None) -> dict:
    """Leaf keys of a nested config (the innermost value wins) to check flags were echoed."""
    out = {} if out is None else out
    for key, value in obj.items():
        if isinstance(value, dict):
            flat(value, out)
        else:
            out[key] = value
    return out


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def check_train_doc(d: dict, gpus: int, global_batch: int, seq: int) -> None:
    assert_fields(d, TRAIN_FIELDS)
    assert set(d["memory_breakdown_bytes"]) >= MEMORY_PARTS
    assert set(d["time_breakdown_s"]) >= TIME_PARTS
    assert all(isinstance(d["memory_breakdown_bytes"][k], (int, float)) for k in MEMORY_PARTS)
    assert all(isinstance(d["time_breakdown_s"][k], (int, float)) for k in TIME_PARTS)
    assert d["step_time_s"] > 0
    # tokens per step / step time (the definition of throughput)
    assert rel(d["tokens_per_s"], global_batch * seq / d["step_time_s"]) < 1e-9
    # model FLOP/s per GPU in TFLOP/s (issue 3's definition)
    tflops = d["model_flops_per_step"] / d["step_time_s"] / gpus / 1e12
    assert rel(d["tflops_per_gpu"], tflops) < 1e-9
    assert 0 < d["mfu"] < 1 and 0 < d["hfu"] < 1
    assert d["hardware_flops_per_step"] >= d["model_flops_per_step"] > 0
    assert d["hfu"] >= d["mfu"]
    parts = sum(d["memory_breakdown_bytes"][k] for k in MEMORY_PARTS)
    assert rel(d["memory_per_gpu_bytes"], parts) < 1e-9
    assert all(d["time_breakdown_s"][k] >= 0 for k in TIME_PARTS)
    assert d["bottleneck"].strip() and " " not in d["bottleneck"]


def check_stats(obj: dict, name: str) -> None:
    assert set(obj) >= set(STATS), f"{name} lacks {set(STATS) - set(obj)}"
    vals = [obj[k] for k in STATS]
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals), name
    assert 0 <= obj["p50"] <= obj["p90"] <= obj["p99"], name


def check_serve_doc(d: dict, n_requests: int) -> None:
    assert_fields(d, SERVE_FIELDS)
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        check_stats(d[name], name)
    assert d["requests_completed"] + d["requests_rejected"] == n_requests
    assert d["requests_completed"] > 0
    assert d["e2e_s"]["p50"] >= d["ttft_s"]["p50"] > 0
    assert 0 <= d["kv_cache_peak_utilization"] <= 1
    assert d["preemptions"] >= 0


# ---------------------------------------------------------------- entry point, --help, --version


def _all_commands() -> list[list[str]]:
    parser = build_parser()
    top = next(a for a in parser._actions if a.dest == "command")
    paths = [[]]
    for name, sub in top.choices.items():
        paths.append([name])
        inner = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in inner:
            paths.extend([name, child] for child in action.choices)
    return paths


EVERY_COMMAND = _all_commands()


def test_every_command_in_the_issues_is_registered():
    names = {tuple(p) for p in EVERY_COMMAND}
    wanted = {("hardware", "list"), ("hardware", "show"), ("model", "list"), ("model", "show"),
              ("train",), ("serve",), ("search", "train"), ("search", "serve"), ("sweep",),
              ("calibrate",), ("validate",), ("report",), ("exercise", "list"),
              ("exercise", "show"), ("exercise", "check")}
    assert wanted <= names, f"missing: {sorted(wanted - names)}"


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=lambda p: " ".join(p) or "clustersim")
def test_help_exits_zero_for_every_command_and_subcommand(capsys, path):
    rc, out, _ = cli(capsys, *path, "--help")
    assert rc == 0
    assert out.startswith("usage: clustersim")


CONTRACT_FLAGS = {
    ("hardware", "list"): [], ("hardware", "show"): [],
    ("model", "list"): [], ("model", "show"): ["--seq"],
    ("train",): ["--model", "--system", "--gpus", "--tp", "--pp", "--dp", "--ep", "--cp",
                 "--zero", "--micro-batch", "--global-batch", "--seq", "--recompute",
                 "--sequence-parallel", "--schedule", "--virtual-stages", "--overlap",
                 "--engine", "--trace", "--timeline"],
    ("serve",): ["--model", "--system", "--tp", "--pp", "--ep", "--replicas", "--policy",
                 "--max-batch", "--block-size", "--chunk-tokens", "--arrival-rate",
                 "--num-requests", "--prompt-tokens", "--output-tokens", "--trace",
                 "--draft-model", "--speculative-tokens", "--acceptance-rate", "--seed"],
    ("search", "train"): ["--model", "--system", "--gpus", "--global-batch", "--seq",
                          "--objective", "--top", "--refine"],
    ("search", "serve"): ["--model", "--system", "--gpus", "--slo-ttft", "--slo-tpot",
                          "--workload"],
    ("sweep",): ["--dask-scheduler"],
    ("calibrate",): ["--device", "--out"],
    ("validate",): ["--quick", "--device"],
    ("report",): ["--out"],
    ("exercise", "list"): [], ("exercise", "show"): ["--seed"],
    ("exercise", "check"): ["--answer", "--seed"],
}
CONTRACT_CHOICES = {
    ("train", "--zero"): {0, 1, 2, 3}, ("train", "--recompute"): {"none", "selective", "full"},
    ("train", "--schedule"): {"gpipe", "1f1b", "interleaved"},
    ("train", "--overlap"): {"max", "sum"}, ("train", "--engine"): {"analytic", "des"},
    ("serve", "--policy"): {"static", "continuous", "chunked", "disaggregated"},
    ("search train", "--objective"): {"throughput", "memory", "cost"},
    ("search train", "--refine"): {"des"},
    ("calibrate", "--device"): {"cpu", "cuda"}, ("validate", "--device"): {"cpu", "cuda"},
}


def _parser_at(path) -> object:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = sub.choices[name]
    return parser


def _options(parser) -> dict:
    return {opt: a for a in parser._actions for opt in a.option_strings}


@pytest.mark.parametrize("path", sorted(CONTRACT_FLAGS), ids=" ".join)
def test_every_contract_flag_exists_and_every_command_takes_json(path):
    options = _options(_parser_at(path))
    missing = [f for f in [*CONTRACT_FLAGS[path], "--json"] if f not in options]
    assert not missing, f"clustersim {' '.join(path)} lacks {missing}"


@pytest.mark.parametrize("where,flag", sorted(CONTRACT_CHOICES), ids=lambda x: x)
def test_contract_choices_are_accepted(where, flag):
    action = _options(_parser_at(where.split()))[flag]
    choices = set(action.choices or ())
    assert CONTRACT_CHOICES[(where, flag)] <= choices, f"{where} {flag}: {choices}"


def test_version_through_the_installed_entry_point():
    from sim import __version__

    done = script("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"clustersim {__version__}"


def test_installed_entry_point_prints_one_json_document_and_nothing_else():
    done = script("hardware", "show", "h100-sxm", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["peak_flops"]["bf16"] == 989.4e12


def test_installed_entry_point_unknown_name_exits_2_without_traceback():
    done = script("hardware", "show", "h100-sxn")
    assert_one_line_error(done.returncode, done.stdout, done.stderr)
    assert "h100-sxm" in done.stderr  # close matches listed


def test_installed_entry_point_train_json():
    done = script("train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8",
                  "--tp", "8", "--pp", "1", "--global-batch", "8", "--seq", "2048", "--json")
    assert done.returncode == 0, done.stderr
    check_train_doc(json.loads(done.stdout), 8, 8, 2048)


@pytest.mark.parametrize("argv,key", [
    (["search", "train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8",
      "--global-batch", "16", "--seq", "2048", "--top", "2", "--json"], "results"),
    (["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1", "--policy",
      "continuous", "--arrival-rate", "5", "--num-requests", "20", "--prompt-tokens", "128",
      "--output-tokens", "16", "--json"], "ttft_s"),
], ids=["search-train", "serve"])
def test_installed_entry_point_json_of_commands_with_progress(argv, key):
    done = script(*argv)
    assert done.returncode == 0, done.stderr
    assert key in json.loads(done.stdout)


# ---------------------------------------------------------------- hardware (issue 2)


def test_hardware_list_json_is_a_list_of_name_and_kind(capsys):
    doc = cli_json(capsys, "hardware", "list")
    assert isinstance(doc, list)
    assert all(set(item) >= {"name", "kind"} for item in doc)
    assert {item["kind"] for item in doc} == {"accelerator", "link", "system"}
    kinds = {item["name"]: item["kind"] for item in doc}
    assert all(kinds.get(n) == "accelerator" for n in ACCELERATORS), kinds
    assert all(kinds.get(n) == "system" for n in SYSTEMS), kinds
    assert sum(k == "link" for k in kinds.values()) >= 10  # NVLink2-5, PCIe4/5, IB x3, RoCE


def test_hardware_list_without_json_prints_a_table(capsys):
    rc, out, _ = cli(capsys, "hardware", "list")
    assert rc == 0 and "h100-sxm" in out and "dgx-h100" in out and not out.startswith("[")


@pytest.mark.parametrize("name", ACCELERATORS)
def test_hardware_show_accelerator_has_the_contract_fields(capsys, name):
    d = cli_json(capsys, "hardware", "show", name)
    assert d["name"] == name and d["kind"] == "accelerator"
    assert isinstance(d["peak_flops"], dict) and d["peak_flops"]["fp16"] > 1e13
    assert {"fp32", "fp16"} <= set(d["peak_flops"])  # V100 has no bf16/tf32 units
    assert name.startswith("v100") or d["peak_flops"]["bf16"] == d["peak_flops"]["fp16"]
    assert isinstance(d["memory_bytes"], int) and d["memory_bytes"] >= 32 * 10**9
    assert d["memory_bandwidth"] >= 0.9e12


def test_hardware_show_h100_is_the_dense_datasheet_figure(capsys):
    d = cli_json(capsys, "hardware", "show", "h100-sxm")
    # NVIDIA H100 datasheet: 989.4 TFLOP/s bf16 dense (1,979 is the sparsity figure)
    assert d["peak_flops"]["bf16"] == 989.4e12
    assert d["memory_bandwidth"] == 3.35e12
    assert d["memory_bytes"] in (80 * 10**9, 80 * 2**30)


@pytest.mark.parametrize("name", SYSTEMS)
def test_hardware_show_system_has_the_contract_fields(capsys, name):
    d = cli_json(capsys, "hardware", "show", name)
    assert d["name"] == name and d["kind"] == "system"
    assert isinstance(d["accelerator"], str) and d["accelerator"] in ACCELERATORS + ["gb200"]
    assert isinstance(d["gpus_per_node"], int) and d["gpus_per_node"] >= 1
    for side in ("intra_node", "inter_node"):
        assert d[side]["bandwidth"] > 0 and d[side]["latency"] > 0, side
    assert d["intra_node"]["bandwidth"] >= d["inter_node"]["bandwidth"]


def test_hardware_show_dgx_h100_and_nvl72_values(capsys):
    d = cli_json(capsys, "hardware", "show", "dgx-h100")
    assert (d["accelerator"], d["gpus_per_node"]) == ("h100-sxm", 8)
    assert d["intra_node"]["bandwidth"] == 450e9  # NVLink4: 900 GB/s bidirectional per GPU
    assert d["inter_node"]["bandwidth"] == 50e9  # one 400 Gb/s ConnectX-7 NIC per GPU
    assert cli_json(capsys, "hardware", "show", "gb200-nvl72")["gpus_per_node"] == 72


@pytest.mark.parametrize("argv", [["hardware", "show", "h100-sxn"],
                                  ["hardware", "show", "dgx-h10"]])
def test_hardware_unknown_name_exits_2_one_line(capsys, argv):
    rc, out, err = cli(capsys, *argv)
    assert_one_line_error(rc, out, err)


# ---------------------------------------------------------------- model (issue 3)


def test_model_list_json_names_every_preset(capsys):
    doc = cli_json(capsys, "model", "list")
    rows = doc if isinstance(doc, list) else doc["models"]
    names = {r["name"] if isinstance(r, dict) else r for r in rows}
    assert set(PRESETS) <= names
    assert any(n.startswith("tiny-") for n in names)


@pytest.mark.parametrize("name,total,active", [
    ("gpt2-124m", 124_439_808, 124_439_808),
    ("llama3-8b", 8_030_261_248, 8_030_261_248),
    # Mixtral config.json: 32 layers, d 4096, 8 experts of 3x4096x14336, top-2, vocab 32000
    ("mixtral-8x7b", 46_702_792_704, 12_879_925_248),
])
def test_model_show_exact_parameter_counts(capsys, name, total, active):
    d = cli_json(capsys, "model", "show", name, "--seq", "2048")
    assert_fields(d, {"name": str, "params_total": int, "params_active": int, "n_layers": int,
                      "hidden": int, "flops_per_token_forward": float})
    assert (d["name"], d["params_total"], d["params_active"]) == (name, total, active)


def test_model_show_flops_per_token_grow_with_seq_and_match_2n(capsys):
    short = cli_json(capsys, "model", "show", "llama3-8b", "--seq", "128")
    long = cli_json(capsys, "model", "show", "llama3-8b", "--seq", "8192")
    assert (short["n_layers"], short["hidden"]) == (32, 4096)
    assert long["flops_per_token_forward"] > short["flops_per_token_forward"]
    # forward ~ 2N FLOPs per token at short sequence (Kaplan et al. 2020, Sec. 2.1)
    non_embedding = short["params_total"] - 2 * 128256 * 4096
    assert rel(short["flops_per_token_forward"], 2 * non_embedding) < 0.05


def test_model_show_accepts_a_hf_config_path(capsys, tmp_path):
    hf = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
          "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
          "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
          "max_position_embeddings": 8192, "tie_word_embeddings": False,
          "hidden_act": "silu"}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    d = cli_json(capsys, "model", "show", str(tmp_path / "config.json"))
    assert d["params_total"] == 8_030_261_248
    assert cli_json(capsys, "model", "show", str(tmp_path))["params_total"] == 8_030_261_248
    t = cli_json(capsys, "train", "--model", str(tmp_path / "config.json"), "--system",
                 "dgx-h100", "--gpus", "8", "--tp", "8", "--pp", "1", "--global-batch", "8",
                 "--seq", "2048")
    check_train_doc(t, 8, 8, 2048)


def test_model_show_unsupported_hf_type_exits_2_one_line(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    rc, out, err = cli(capsys, "model", "show", str(tmp_path / "config.json"))
    assert_one_line_error(rc, out, err)
    assert "bert" in err


def test_model_unknown_name_exits_2_one_line_with_close_matches(capsys):
    rc, out, err = cli(capsys, "model", "show", "llama3-9b")
    assert_one_line_error(rc, out, err)
    assert "llama3-8b" in err


# ---------------------------------------------------------------- train (issues 3 and 4)

TRAIN_ALL_FLAGS = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8",
                   "--tp", "2", "--pp", "2", "--dp", "2", "--zero", "1", "--micro-batch", "1",
                   "--global-batch", "16", "--seq", "2048", "--recompute", "selective",
                   "--sequence-parallel", "--schedule", "interleaved", "--virtual-stages", "2",
                   "--overlap", "sum", "--engine", "analytic"]


def test_train_every_dense_flag_gives_the_contract_json(capsys):
    d = cli_json(capsys, *TRAIN_ALL_FLAGS)
    check_train_doc(d, 8, 16, 2048)
    cfg = flat(d["config"])
    want = {"tp": 2, "pp": 2, "dp": 2, "zero": 1, "micro_batch": 1, "global_batch": 16,
            "recompute": "selective", "sequence_parallel": True, "schedule": "interleaved",
            "virtual_stages": 2, "overlap": "sum"}
    assert {k: cfg.get(k) for k in want} == want
    assert cfg.get("seq_len", cfg.get("seq")) == 2048
    # with --overlap sum nothing hides: the step is the sum of its parts
    assert d["time_breakdown_s"]["communication_exposed"] > 0
    assert sum(d["time_breakdown_s"][k] for k in TIME_PARTS) <= d["step_time_s"] * (1 + 1e-9)


def test_train_overlap_max_is_never_slower_than_sum(capsys):
    base = [a for a in TRAIN_ALL_FLAGS if a not in ("--overlap", "sum")]
    fast = cli_json(capsys, *base, "--overlap", "max")["step_time_s"]
    slow = cli_json(capsys, *base, "--overlap", "sum")["step_time_s"]
    assert fast <= slow


def test_train_moe_with_ep_cp_and_zero2(capsys):
    d = cli_json(capsys, "train", "--model", "mixtral-8x7b", "--system", "dgx-h100",
                 "--gpus", "16", "--tp", "2", "--pp", "1", "--dp", "4", "--ep", "4", "--cp", "2",
                 "--zero", "2", "--micro-batch", "1", "--global-batch", "32", "--seq", "4096",
                 "--recompute", "full")
    check_train_doc(d, 16, 32, 4096)
    cfg = flat(d["config"])
    assert (cfg.get("ep"), cfg.get("cp"), cfg.get("zero"), cfg.get("dp")) == (4, 2, 2, 4)
    assert d["hfu"] > d["mfu"]  # full recompute: hardware FLOPs exceed model FLOPs


def test_train_recompute_modes_keep_model_flops_and_raise_hardware_flops(capsys):
    base = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8", "--tp", "8",
            "--pp", "1", "--global-batch", "8", "--seq", "2048", "--micro-batch", "1"]
    runs = {m: cli_json(capsys, *base, "--recompute", m) for m in ("none", "selective", "full")}
    model = {runs[m]["model_flops_per_step"] for m in runs}
    assert len(model) == 1
    hw = [runs[m]["hardware_flops_per_step"] for m in ("none", "selective", "full")]
    assert hw[0] <= hw[1] < hw[2]
    acts = [runs[m]["memory_breakdown_bytes"]["activations"] for m in ("none", "selective",
                                                                          "full")]
    # flash attention already drops the s^2 scores selective recompute would drop
    assert acts[0] >= acts[1] > acts[2]


def test_train_zero3_shards_weights_over_dp(capsys):
    d = cli_json(capsys, "train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8",
                 "--tp", "1", "--pp", "1", "--dp", "8", "--zero", "3", "--global-batch", "8",
                 "--seq", "2048")
    check_train_doc(d, 8, 8, 2048)
    # bf16 weights, 2 bytes/param, split 8 ways (Rajbhandari et al. 2020, ZeRO-3)
    assert rel(d["memory_breakdown_bytes"]["weights"], 8_030_261_248 * 2 / 8) < 0.01


def test_train_unsharded_llama3_70b_on_8_gpus_does_not_fit(capsys):
    d = cli_json(capsys, "train", "--model", "llama3-70b", "--system", "dgx-h100", "--gpus", "8",
                 "--tp", "1", "--pp", "1", "--global-batch", "8", "--seq", "4096")
    assert d["fits"] is False
    assert d["memory_per_gpu_bytes"] > 80 * 2**30


@pytest.mark.parametrize("schedule,v", [("gpipe", 1), ("1f1b", 1), ("interleaved", 2)])
def test_train_des_engine_adds_bubble_and_peak_memory(capsys, schedule, v):
    argv = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "4", "--tp", "1",
            "--pp", "4", "--micro-batch", "1", "--global-batch", "8", "--seq", "1024",
            "--schedule", schedule, "--virtual-stages", str(v), "--overlap", "sum"]
    des = cli_json(capsys, *argv, "--engine", "des")
    ana = cli_json(capsys, *argv, "--engine", "analytic")
    check_train_doc(des, 4, 8, 1024)
    assert not set(ana) - set(des), f"DES lacks analytic fields {set(ana) - set(des)}"
    assert isinstance(des["bubble_fraction"], float) and 0 < des["bubble_fraction"] < 1
    assert isinstance(des["peak_memory_per_gpu_bytes"], (int, float))
    assert des["peak_memory_per_gpu_bytes"] > 0
    assert rel(des["step_time_s"], ana["step_time_s"]) < 0.25  # both read the same costs


def test_train_des_writes_chrome_trace_and_timeline(capsys, tmp_path):
    trace, png = tmp_path / "step.json", tmp_path / "step.png"
    d = cli_json(capsys, "train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "4",
                 "--tp", "1", "--pp", "4", "--micro-batch", "1", "--global-batch", "8",
                 "--seq", "1024", "--engine", "des", "--trace", str(trace),
                 "--timeline", str(png))
    check_train_doc(d, 4, 8, 1024)
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert any(e.get("ph") == "X" and e.get("dur", 0) > 0 for e in events)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_des_same_inputs_give_byte_identical_json(capsys):
    argv = ["train", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--gpus", "8",
            "--tp", "2", "--pp", "1", "--ep", "4", "--global-batch", "8", "--seq", "1024",
            "--engine", "des", "--routing", "zipf", "--seed", "5", "--json"]
    first = cli(capsys, *argv)
    assert first[0] == 0, first[2]
    assert first[1] == cli(capsys, *argv)[1]


def test_train_without_json_prints_a_table(capsys):
    rc, out, _ = cli(capsys, *TRAIN_ALL_FLAGS)
    assert rc == 0 and not out.lstrip().startswith("{")
    assert "step" in out.lower() and "mfu" in out.lower()


@pytest.mark.parametrize("swap", [("--model", "llama3-9b"), ("--system", "dgx-h10")])
def test_train_unknown_name_exits_2_one_line(capsys, swap):
    argv = list(TRAIN_ALL_FLAGS)
    argv[argv.index(swap[0]) + 1] = swap[1]
    assert_one_line_error(*cli(capsys, *argv))


def test_train_invalid_plan_exits_2_one_line(capsys):
    rc, out, err = cli(capsys, "train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus",
                       "8", "--tp", "3", "--pp", "1", "--global-batch", "8", "--seq", "2048")
    assert_one_line_error(rc, out, err)
    assert "tp" in err


# ---------------------------------------------------------------- serve (issue 5)

SERVE_BASE = ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
              "--arrival-rate", "5", "--num-requests", "40", "--prompt-tokens", "256",
              "--output-tokens", "32", "--seed", "1"]


@pytest.mark.parametrize("policy", ["static", "continuous", "chunked", "disaggregated"])
def test_serve_each_policy_gives_the_contract_json(capsys, policy):
    d = cli_json(capsys, *SERVE_BASE, "--policy", policy)
    check_serve_doc(d, 40)
    assert d["requests_completed"] == 40
    # fixed output length: output tokens/s = requests/s x 32 tokens
    assert rel(d["throughput_tokens_per_s"], 32 * d["throughput_requests_per_s"]) < 1e-6
    assert d["saturated"] is False  # 5 QPS of short requests on one H100 is light load
    assert flat(d["config"]).get("policy") == policy


def test_serve_overload_is_flagged_saturated(capsys):
    d = cli_json(capsys, "serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
                 "--policy", "static", "--max-batch", "4", "--arrival-rate", "200",
                 "--num-requests", "40", "--prompt-tokens", "512", "--output-tokens", "64")
    check_serve_doc(d, 40)
    assert d["saturated"] is True
    assert d["throughput_requests_per_s"] < 200  # served far below the offered rate


def test_serve_every_replica_and_batching_flag_with_speculative_decoding(capsys):
    d = cli_json(capsys, "serve", "--model", "llama3-70b", "--system", "dgx-h100", "--tp", "4",
                 "--pp", "2", "--replicas", "1", "--policy", "chunked", "--max-batch", "16",
                 "--block-size", "32", "--chunk-tokens", "512", "--arrival-rate", "2",
                 "--num-requests", "20", "--prompt-tokens", "512", "--output-tokens", "16",
                 "--draft-model", "llama3-8b", "--speculative-tokens", "4",
                 "--acceptance-rate", "0.7", "--seed", "3")
    check_serve_doc(d, 20)
    cfg = flat(d["config"])
    want = {"tp": 4, "pp": 2, "replicas": 1, "max_batch": 16, "block_size": 32,
            "chunk_tokens": 512, "draft_model": "llama3-8b", "speculative_tokens": 4, "seed": 3}
    assert {k: cfg.get(k) for k in want} == want


def test_serve_moe_with_ep_and_replicas(capsys):
    d = cli_json(capsys, "serve", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--tp", "2",
                 "--ep", "2", "--replicas", "2", "--policy", "continuous", "--arrival-rate", "4",
                 "--num-requests", "20", "--prompt-tokens", "128", "--output-tokens", "16")
    check_serve_doc(d, 20)
    cfg = flat(d["config"])
    assert (cfg.get("ep"), cfg.get("replicas")) == (2, 2)


def test_serve_trace_csv_replays_its_requests(capsys, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_time_s,prompt_tokens,output_tokens\n"
                     "0.0,128,16\n0.1,256,8\n0.25,64,32\n")
    d = cli_json(capsys, "serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1",
                 "--policy", "continuous", "--arrival-rate", "5", "--num-requests", "3",
                 "--prompt-tokens", "128", "--output-tokens", "16", "--trace", str(trace))
    check_serve_doc(d, 3)
    assert d["requests_completed"] == 3
    # 16 + 8 + 32 output tokens, last request arrives at 0.25 s
    assert d["throughput_tokens_per_s"] < 56 / 0.25


def test_serve_same_seed_gives_byte_identical_json(capsys):
    argv = [*SERVE_BASE, "--policy", "continuous", "--json"]
    first = cli(capsys, *argv)[1]
    assert first == cli(capsys, *argv)[1]


def test_serve_unknown_model_exits_2_one_line(capsys):
    argv = [*SERVE_BASE, "--policy", "continuous"]
    argv[argv.index("--model") + 1] = "llama3-9b"
    assert_one_line_error(*cli(capsys, *argv))


# ---------------------------------------------------------------- search (issue 8)

SEARCH_TRAIN = ["search", "train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "8",
                "--global-batch", "16", "--seq", "2048"]


def test_search_train_refine_des_gives_ranked_train_results(capsys):
    d = cli_json(capsys, *SEARCH_TRAIN, "--objective", "throughput", "--top", "2",
                 "--refine", "des")
    assert isinstance(d["evaluated"], int) and d["evaluated"] > 0
    assert isinstance(d["infeasible"], dict)
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in d["infeasible"].items())
    assert 1 <= len(d["results"]) <= 2
    for r in d["results"]:
        assert isinstance(r["plan"], dict)
        check_train_doc(r, 8, 16, 2048)
        assert r["fits"] is True
    times = [r["step_time_s"] for r in d["results"]]
    assert times == sorted(times)


@pytest.mark.parametrize("objective,key", [("throughput", "step_time_s"),
                                           ("memory", "memory_per_gpu_bytes")])
def test_search_train_objective_orders_results(capsys, objective, key):
    d = cli_json(capsys, *SEARCH_TRAIN, "--objective", objective, "--top", "3")
    values = [r[key] for r in d["results"]]
    assert len(values) == 3 and values == sorted(values)


def test_search_train_cost_objective(capsys):
    d = cli_json(capsys, *SEARCH_TRAIN, "--objective", "cost", "--top", "2")
    assert len(d["results"]) == 2 and all(r["fits"] for r in d["results"])


@pytest.mark.slow
def test_search_serve_finds_a_rate_within_the_slo(capsys):
    d = cli_json(capsys, "search", "serve", "--model", "llama3-8b", "--system", "dgx-h100",
                 "--gpus", "2", "--slo-ttft", "0.5", "--slo-tpot", "0.05",
                 "--workload", "prompt=256,output=32,requests=40")
    assert d["results"], "no configuration meets the SLO"
    best = d["results"][0]
    assert best["max_rate_rps"] > 0
    assert best["usd_per_million_output_tokens"] > 0
    rates = [r["max_rate_rps"] for r in d["results"]]
    assert rates == sorted(rates, reverse=True)


def test_search_unknown_model_exits_2_one_line(capsys):
    argv = list(SEARCH_TRAIN)
    argv[argv.index("--model") + 1] = "llama3-9b"
    assert_one_line_error(*cli(capsys, *argv))


# ---------------------------------------------------------------- sweep (issue 8)

SWEEP_TOML = """\
kind = "train"
[base]
model = "llama3-8b"
system = "dgx-h100"
gpus = 8
pp = 1
global_batch = 16
seq = 2048
[grid]
tp = [1, 2]
recompute = ["none", "full"]
"""


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_sweep_writes_one_tidy_table_and_resumes(capsys, tmp_path, monkeypatch, suffix):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(SWEEP_TOML)
    out = tmp_path / f"tiny.{suffix}"
    cli_json(capsys, "sweep", "tiny.toml", "--out", str(out))
    table = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    assert len(table) == 4
    assert sorted(zip(table["tp"], table["recompute"], strict=True)) == [
        (1, "full"), (1, "none"), (2, "full"), (2, "none")]
    assert (table["step_time_s"] > 0).all()
    again = cli_json(capsys, "sweep", "tiny.toml", "--out", str(out))
    assert again.get("skipped") == 4  # resume: nothing recomputed


# ---------------------------------------------------------------- calibrate / validate (6)


def _in_process(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """`clustersim calibrate --device cpu --quick --out FILE --json` (~15 s here)."""
    profile = tmp_path_factory.mktemp("calibrate") / "here.toml"
    rc, out = _in_process("calibrate", "--device", "cpu", "--quick", "--out", str(profile),
                          "--json")
    return rc, out, profile


@pytest.fixture(scope="module")
def validated(calibrated, tmp_path_factory):
    """The full `validate --quick --json` takes ~100 s here (docs/contract-audit.md), so reuse
    the calibrated profile and run the exact stages, which carry the same JSON contract."""
    out_dir = tmp_path_factory.mktemp("validate")
    rc, out = _in_process("validate", "--quick", "--system", str(calibrated[2]), "--stages",
                          "exact,collectives", "--out-dir", str(out_dir), "--json")
    return rc, out, out_dir


@pytest.mark.slow
def test_calibrate_quick_writes_a_profile_every_command_can_use(calibrated, capsys):
    import tomllib

    rc, out, profile = calibrated
    assert rc == 0
    json.loads(out)
    tomllib.loads(profile.read_text())
    shown = cli_json(capsys, "hardware", "show", str(profile))
    assert shown["kind"] == "system"
    d = cli_json(capsys, "train", "--model", "tiny-llama", "--system", str(profile), "--gpus",
                 "1", "--tp", "1", "--pp", "1", "--global-batch", "4", "--seq", "128")
    assert d["step_time_s"] > 0


@pytest.mark.slow
def test_validate_json_has_the_contract_fields_and_writes_the_scatter_chart(validated):
    assert_validate_doc(json.loads(validated[1]))
    assert list(validated[2].glob("*.png")), "no predicted-vs-measured chart written"


@pytest.mark.slow
def test_validate_exact_checks_pass_and_exit_zero(validated):
    rc, out, _ = validated
    assert json.loads(out)["exact_mismatches"] == []
    assert rc == 0


def assert_validate_doc(v: dict) -> None:
    assert isinstance(v["cases"], list) and v["cases"]
    for case in v["cases"]:
        assert set(case) >= {"name", "metric", "predicted", "measured", "rel_error"}
        assert isinstance(case["name"], str) and isinstance(case["metric"], str)
    assert isinstance(v["exact_mismatches"], (list, int))
    for key in ("timing_median_abs_rel_error", "timing_max_abs_rel_error"):
        assert key in v and (v[key] is None or isinstance(v[key], float))


# ---------------------------------------------------------------- report (issue 7)


def test_report_only_one_scenario_into_a_tmp_dir(capsys, tmp_path):
    d = cli_json(capsys, "report", "--only", "moe_not_an_ensemble", "--out", str(tmp_path))
    assert (tmp_path / "index.md").exists()
    assert (tmp_path / "moe_not_an_ensemble" / "summary.md").exists()
    assert not d.get("failed")


def test_report_unknown_scenario_exits_2_one_line(capsys, tmp_path):
    assert_one_line_error(*cli(capsys, "report", "--only", "moe_vs_dens", "--out", str(tmp_path)))


# ---------------------------------------------------------------- exercise (issue 7)


def test_exercise_list_json_has_id_lesson_topic_tags(capsys):
    rows = cli_json(capsys, "exercise", "list")
    assert isinstance(rows, list) and len(rows) >= 30
    for r in rows:
        assert isinstance(r["id"], str) and isinstance(r["lesson"], str)
        assert isinstance(r["topic"], str) and isinstance(r["tags"], list)
    assert len({r["id"] for r in rows}) == len(rows)


def test_exercise_show_prints_the_prompt_with_seeded_numbers(capsys):
    rc, out, _ = cli(capsys, "exercise", "show", "zero-memory", "--seed", "7")
    assert rc == 0 and "zero-memory" in out and "GiB" in out
    prompts = {cli(capsys, "exercise", "show", "zero-memory", "--seed", str(s))[1]
               for s in range(4)}
    assert len(prompts) > 1  # seeds draw different variants


def test_exercise_check_json_fields_and_ratio(capsys):
    d = cli_json(capsys, "exercise", "check", "zero-memory", "--answer", "35", "--seed", "7")
    assert_fields(d, {"id": str, "answer": float, "expected": float, "ratio": float,
                      "correct": bool, "explanation": str})
    assert d["id"] == "zero-memory" and d["answer"] == 35
    assert rel(d["ratio"], 35 / d["expected"]) < 1e-9
    assert d["correct"] is False and d["explanation"].strip()
    right = cli_json(capsys, "exercise", "check", "zero-memory", "--answer",
                     repr(d["expected"]), "--seed", "7")
    assert right["correct"] is True and rel(right["ratio"], 1.0) < 1e-9


@pytest.mark.parametrize("argv", [["exercise", "show", "zero-memry"],
                                  ["exercise", "check", "zero-memry", "--answer", "1"]])
def test_exercise_unknown_id_exits_2_one_line(capsys, argv):
    assert_one_line_error(*cli(capsys, *argv))


@pytest.mark.parametrize("argv", [
    ["sweep", "nothere.toml"],
    ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1", "--policy",
     "continuous", "--arrival-rate", "5", "--num-requests", "5", "--prompt-tokens", "64",
     "--output-tokens", "8", "--draft-model", "llama9", "--speculative-tokens", "2",
     "--acceptance-rate", "0.5"],
    ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1", "--policy",
     "continuous", "--arrival-rate", "5", "--num-requests", "5", "--prompt-tokens", "64",
     "--output-tokens", "8", "--trace", "/nonexistent/trace.csv"],
    ["search", "serve", "--model", "llama3-8b", "--system", "dgx-h10", "--gpus", "2",
     "--slo-ttft", "0.5", "--slo-tpot", "0.05"],
], ids=["sweep-missing-file", "serve-unknown-draft", "serve-missing-trace",
        "search-serve-unknown-system"])
def test_bad_names_and_files_exit_2_one_line(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(*cli(capsys, *argv, "--json"))


@pytest.mark.parametrize("argv", [
    ["model", "show", "mixtral-8x7b", "--seq", "4096"],
    ["model", "list"],
    [*SERVE_BASE, "--policy", "continuous"],
    [*SEARCH_TRAIN, "--top", "2"],
    ["exercise", "check", "zero-memory", "--answer", "35", "--seed", "7"],
    ["exercise", "list"],
], ids=lambda a: " ".join(a[:2]))
def test_without_json_commands_print_a_readable_table(capsys, argv):
    rc, out, _ = cli(capsys, *argv)
    assert rc == 0 and out.strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_no_nan_leaks_into_json(capsys):
    d = cli_json(capsys, *TRAIN_ALL_FLAGS)
    text = json.dumps(d)
    assert "NaN" not in text and "Infinity" not in text
    assert all(math.isfinite(v) for v in flat(d).values()
               if isinstance(v, float))
