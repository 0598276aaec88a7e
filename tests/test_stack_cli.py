"""``clustersim stack list|show`` and ``--stack`` / per-knob flags on train and serve."""

import json

from sim.cli.main import main

TRAIN = ["train", "--model", "llama3-8b", "--system", "dgx-h100", "--gpus", "16", "--tp", "1",
         "--pp", "1", "--global-batch", "64", "--seq", "2048", "--json"]


def _json(capsys, argv) -> tuple[int, dict]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_stack_list_names_every_stack_and_both_defaults(capsys):
    code, doc = _json(capsys, ["stack", "list", "--json"])
    assert code == 0 and doc["default_training"] == "megatron-core-2024"
    names = {s["name"] for s in doc["stacks"]}
    assert {"megatron-lm-2021", "vllm-0.2", "distserve-2024", doc["default_serving"]} <= names


def test_stack_show_gives_every_setting_with_its_source_and_flag(capsys):
    code, doc = _json(capsys, ["stack", "show", "megatron-lm-2021", "--json"])
    assert code == 0 and doc["attention_kernel"] == "math"
    by_field = {s["field"]: s for s in doc["settings"]}
    assert by_field["overlap_grad_reduce"]["flag"] == "--overlap-grad-reduce"
    assert all(s["source"] for s in doc["settings"])


def test_an_unknown_stack_is_a_json_error_with_exit_status_2(capsys):
    code = main(TRAIN + ["--stack", "megatron-2099"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and "megatron-2099" in out["error"]["message"]


def test_an_out_of_range_knob_flag_is_refused_naming_the_flag(capsys):
    code = main(TRAIN + ["--overlap-slowdown", "1.5"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and "--overlap-slowdown" in out["error"]["message"]


def test_train_defaults_to_the_stack_and_names_it_in_config(capsys):
    code, doc = _json(capsys, TRAIN)
    assert code == 0
    assert doc["config"]["overlap"] == "stack" and doc["config"]["plan"]["overlap"] == "stack"
    assert doc["config"]["stack"]["name"] == "megatron-core-2024"
    assert doc["step_time_s_low"] < doc["step_time_s"] < doc["step_time_s_high"]


def test_a_knob_flag_overrides_the_stack_and_changes_the_answer(capsys):
    _, base = _json(capsys, TRAIN)
    _, slow = _json(capsys, TRAIN + ["--framework-overhead", "0.5", "--no-overlap-grad-reduce"])
    assert slow["config"]["stack"]["overlap_grad_reduce"] is False
    assert slow["step_time_s"] > base["step_time_s"] + 0.5 - 1e-9


def test_the_2021_stack_turns_flash_attention_off_and_dropout_on(capsys):
    _, doc = _json(capsys, TRAIN + ["--stack", "megatron-lm-2021"])
    assert doc["config"]["plan"]["flash_attention"] is False
    assert doc["config"]["model"]["dropout"] == 0.1


def test_serve_takes_a_stack_and_its_overhead_slows_every_iteration(capsys):
    argv = ["serve", "--model", "llama3-8b", "--system", "dgx-h100", "--tp", "1", "--policy",
            "continuous", "--arrival-rate", "2", "--num-requests", "30", "--prompt-tokens",
            "256", "--output-tokens", "32", "--json"]
    _, fast = _json(capsys, argv)
    _, slow = _json(capsys, argv + ["--stack", "vllm-0.2", "--scheduler-overhead", "0.01"])
    assert slow["config"]["stack"]["scheduler_overhead_s"] == 0.01
    assert slow["tpot_s"]["mean"] > fast["tpot_s"]["mean"] + 0.009


def test_a_serving_stacks_attention_kernel_prices_prefill_attention():
    from hardware import Cluster
    from sim.costs.inference import forward_time
    from sim.model import get_model
    from sim.stack import get_stack, with_overrides

    model, cluster = get_model("llama3-8b"), Cluster.for_gpus("dgx-h100", 1)
    st = get_stack("vllm-2024")
    t = {k: forward_time(model, cluster, prefill_lens=[8192], prefill_ctx=[0],
                         stack=with_overrides(st, {"attention_kernel": k})).time_s
         for k in ("fa1", "fa2")}
    assert t["fa1"] > t["fa2"]
