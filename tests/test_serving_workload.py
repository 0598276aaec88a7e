"""Workloads: length specs, arrival processes, trace replay, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ConfigError
from sim.serving.workload import ArrivalSpec, LengthSpec, make_workload, read_trace


def test_length_specs_parse_and_sample_their_distributions():
    rng = np.random.default_rng(0)
    assert (LengthSpec.parse("512").sample(rng, 5, None) == 512).all()
    u = LengthSpec.parse("uniform:64:512").sample(rng, 20_000, None)
    assert u.min() == 64 and u.max() == 512
    ln = LengthSpec.parse("lognormal:256:0.8").sample(rng, 200_000, None)
    assert ln.mean() == pytest.approx(256, rel=0.01)  # MEAN is the mean, not exp(mu)
    assert str(LengthSpec.parse("uniform:64:512")) == "uniform:64:512"


@pytest.mark.parametrize("bad", ["0", "uniform:9:3", "lognormal:100", "normal:1:2", "x"])
def test_bad_length_specs_name_the_accepted_forms(bad):
    with pytest.raises(ConfigError, match="length spec .*(uniform:LO:HI|LO <= HI)"):
        LengthSpec.parse(bad)


def test_poisson_and_gamma_gaps_have_the_requested_rate_and_cv():
    p, o = LengthSpec.parse("8"), LengthSpec.parse("8")
    for spec, cv in ((ArrivalSpec.parse("poisson"), 1.0), (ArrivalSpec.parse("gamma:3"), 3.0)):
        w = make_workload(100_000, 20.0, p, o, arrival=spec, seed=5)
        gaps = np.diff(w.arrival_s)
        assert gaps.mean() == pytest.approx(1 / 20, rel=0.03)
        assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_same_seed_same_requests():
    args = (50, 3.0, LengthSpec.parse("lognormal:100:1"), LengthSpec.parse("uniform:1:9"))
    a, b = make_workload(*args, seed=11), make_workload(*args, seed=11)
    for x, y in zip((a.arrival_s, a.prompt_tokens, a.output_tokens),
                    (b.arrival_s, b.prompt_tokens, b.output_tokens), strict=True):
        assert np.array_equal(x, y)
    c = make_workload(*args, seed=12)
    assert not np.array_equal(a.prompt_tokens, c.prompt_tokens)


def test_trace_replays_rows_and_resamples_lengths(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_time_s,prompt_tokens,output_tokens\n0.5,10,3\n0.1,20,4\n2.0,30,5\n")
    trace = read_trace(f)
    w = make_workload(3, 1.0, LengthSpec.parse("trace"), LengthSpec.parse("trace"),
                      arrival=ArrivalSpec.parse("trace"), trace=trace)
    assert list(w.arrival_s) == [0.1, 0.5, 2.0]  # sorted by arrival
    assert list(w.prompt_tokens) == [20, 10, 30] and list(w.output_tokens) == [4, 3, 5]
    s = make_workload(500, 5.0, LengthSpec.parse("trace"), LengthSpec.parse("7"), trace=trace)
    assert set(s.prompt_tokens) == {10, 20, 30} and set(s.output_tokens) == {7}
    with pytest.raises(ConfigError, match="exceeds the trace's 3 rows"):
        make_workload(4, 1.0, LengthSpec.parse("trace"), LengthSpec.parse("trace"),
                      arrival=ArrivalSpec.parse("trace"), trace=trace)


def test_trace_without_the_contract_columns_is_an_error(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("time,prompt\n0,1\n")
    with pytest.raises(ConfigError, match="arrival_time_s,prompt_tokens,output_tokens"):
        read_trace(f)
