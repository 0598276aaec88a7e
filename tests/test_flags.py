"""The input layer itself: typed flags, one-line/JSON errors, atomic writes, output checks."""

from __future__ import annotations

import argparse
import json

import pytest

from sim.cli.flags import FlagValueError, parse_float, parse_int
from sim.cli.main import build_parser, main
from sim.errors import OutputPathError
from sim.fileio import atomic_path, atomic_write_text, check_output


def _actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


def test_no_flag_of_any_command_is_parsed_by_bare_int_or_float():
    # bare int()/float() accept nan, inf, 1_000 and any size: every number goes through
    # sim.cli.flags (a bound and finiteness) instead
    raw = [f"{' '.join(p)} {a.option_strings or a.dest}" for p, a in _actions(build_parser())
           if a.type in (int, float)]
    assert raw == []


@pytest.mark.parametrize("text", ["1e3", "8.0", "nan", "", " ", "0x10", "١", "1_000", "--"])
def test_integers_are_plain_ascii_decimal(text):
    with pytest.raises(FlagValueError, match="is not an integer"):
        parse_int(text, 1, 10)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999"])
def test_floats_must_be_finite(text):
    with pytest.raises(FlagValueError, match="not finite"):
        parse_float(text, 0, 1)


def test_ranges_name_the_bounds():
    with pytest.raises(FlagValueError, match=r"must be an integer in \[1, 4096\]"):
        parse_int("4097", 1, 4096)
    with pytest.raises(FlagValueError, match=r"must be a number in \(0, 1\]"):
        parse_float("0", 0.0, 1.0, lo_open=True)


def test_a_bad_flag_under_json_is_one_error_document_on_stdout(capsys):
    rc = main(["serve", "--model", "tiny-llama", "--system", "dgx-h100", "--tp", "0",
               "--policy", "continuous", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and err == ""
    doc = json.loads(out)
    assert doc["error"]["flag"] == "--tp" and doc["error"]["type"] == "FlagError"
    assert "0 is out of range; must be an integer in [1, 4096]" in doc["error"]["message"]


def test_a_lone_double_dash_value_is_refused_not_a_list(capsys):
    assert main(["model", "show", "tiny-llama", "--seq=--"]) == 2
    assert "--seq: '--' is not a value" in capsys.readouterr().err


def test_atomic_write_keeps_the_previous_file_when_the_writer_dies(tmp_path):
    path = tmp_path / "trace.json"
    atomic_write_text(path, "previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temp file left


def test_an_output_equal_to_an_input_is_refused(tmp_path):
    model = tmp_path / "my.json"
    model.write_text("{}")
    with pytest.raises(OutputPathError, match="is also an input of this run"):
        check_output(str(model), "--trace", inputs=(str(model),))
    assert model.read_text() == "{}"


@pytest.mark.parametrize("path", ["/dev/null/x.json", "/proc/nope/x.json"])
def test_an_unwritable_output_is_refused_before_the_run(path):
    with pytest.raises(OutputPathError, match="--timeline"):
        check_output(path, "--timeline")


def test_a_des_trace_over_its_own_model_config_is_refused(tmp_path, capsys):
    cfg = tmp_path / "my.json"
    cfg.write_text(open("tests/data/hf/llama3-8b/config.json").read())
    before = cfg.read_bytes()
    rc = main(["train", "--model", str(cfg), "--system", "dgx-h100", "--gpus", "8", "--tp", "1",
               "--pp", "1", "--global-batch", "8", "--seq", "64", "--engine", "des",
               "--trace", str(cfg)])
    assert rc == 2 and cfg.read_bytes() == before
    assert "--trace" in capsys.readouterr().err


def test_the_des_event_estimate_bounds_the_simulated_events():
    from hardware import Cluster, get_system
    from sim.cli.train_limits import estimate_des_events
    from sim.des import simulate_train
    from sim.model import get_model
    from sim.plan import ParallelPlan

    model = get_model("tiny-moe")
    plan = ParallelPlan(tp=1, pp=2, dp=2, ep=2, global_batch=8, seq_len=64)
    events = simulate_train(model, plan, Cluster.for_gpus(get_system("dgx-h100"), 4)).events
    assert events <= estimate_des_events(model, plan) <= 50 * events


def test_a_des_step_above_the_event_budget_is_refused_naming_the_flag(capsys):
    rc = main(["train", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--gpus", "8", "--tp",
               "1", "--pp", "1", "--ep", "8", "--global-batch", "1000000", "--seq", "4096",
               "--engine", "des"])
    err = capsys.readouterr().err
    assert rc == 2 and "events, above this machine's limit" in err and "--global-batch" in err
