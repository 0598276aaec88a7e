"""Fuzzing the command line: every invalid input is a one-line error naming it, exit status 2.

Thousands of generated hostile inputs per run (Hypothesis strategies in tests/fuzzkit.py:
numeric flags negative, zero, huge, NaN, inf, not a number; choices that do not exist; plans
that do not divide; malformed config.json, hardware TOML, trace CSV and sweep TOML; unwritable
or clobbering output paths; work too large for this machine) plus the hand-made corpus in
tests/data/hostile. Each case runs ``main()`` in-process under a 60 s guard; the verdict must
be "ok": exit 2, one line on stderr (or one ``{"error": ...}`` document on stdout under
``--json``), no traceback, and the message names the flag or file field at fault.
benchmarks/fuzz_cli.py runs the same strategies 10,000+ times and prints the counts.
"""

from __future__ import annotations

import fuzzkit as fk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def assert_ok(case: fk.Case) -> None:
    outcome = fk.run_cli(case.argv, timeout=60)
    verdict = fk.verdict(case, outcome)
    assert verdict == "ok", (f"{verdict}: {case.what}\nargv: {case.argv}\nstdout: "
                             f"{outcome.out[-400:]}\nstderr: {outcome.err[-400:]}\n"
                             f"{outcome.error[-2000:]}")


def _both(strategy):
    return st.tuples(strategy, st.booleans()).map(lambda t: t[0].with_json() if t[1] else t[0])


@settings(FUZZ, max_examples=600)
@given(_both(fk.flag_case(fk.TRAIN_BASE, fk.TRAIN_FLAGS, "train")))
def test_every_bad_train_flag_is_one_line_naming_the_flag(case):
    assert_ok(case)


@settings(FUZZ, max_examples=600)
@given(_both(fk.flag_case(fk.SERVE_BASE, fk.SERVE_FLAGS, "serve")))
def test_every_bad_serve_flag_is_one_line_naming_the_flag(case):
    assert_ok(case)


@settings(FUZZ, max_examples=300)
@given(_both(st.one_of(fk.flag_case(fk.SEARCH_TRAIN_BASE, fk.SEARCH_TRAIN_FLAGS, "search"),
                       fk.flag_case(fk.SEARCH_SERVE_BASE, fk.SEARCH_SERVE_FLAGS, "search"))))
def test_every_bad_search_flag_is_one_line_naming_the_flag(case):
    assert_ok(case)


@settings(FUZZ, max_examples=250)
@given(_both(fk.hf_case()))
def test_malformed_model_config_json_names_the_field(case):
    assert_ok(case)


@settings(FUZZ, max_examples=250)
@given(_both(fk.hardware_case()))
def test_malformed_hardware_toml_names_the_key(case):
    assert_ok(case)


@settings(FUZZ, max_examples=200)
@given(_both(fk.trace_case()))
def test_malformed_trace_csv_names_the_row_and_column(case):
    assert_ok(case)


@settings(FUZZ, max_examples=200)
@given(_both(fk.sweep_case().filter(lambda c: c is not None)))
def test_malformed_sweep_toml_names_the_key(case):
    assert_ok(case)


@settings(FUZZ, max_examples=150)
@given(_both(st.one_of(fk.plan_cases(), fk.output_cases(), fk.sweep_flag_cases())))
def test_illegal_plans_bad_outputs_and_too_much_work_are_refused_by_name(case):
    assert_ok(case)


@settings(FUZZ, max_examples=500)
@given(_both(fk.auto_flag_case()))
def test_every_typed_flag_of_every_command_refuses_out_of_range_values(case):
    assert_ok(case)


def test_the_fuzzer_reaches_every_numeric_flag_of_the_main_commands():
    seen = {(p, f) for p, f, _ in fk.typed_flags()}
    for path, flag in [(("train",), "--seq"), (("serve",), "--max-batched-tokens"),
                       (("explore", "moe"), "--experts"), (("validate",), "--repeats")]:
        assert (path, flag) in seen


@pytest.mark.parametrize("case", fk.hostile_files(), ids=lambda c: c.what)
def test_hostile_corpus_file_is_refused_by_every_reader(case):
    assert_ok(case)
    assert_ok(case.with_json())
