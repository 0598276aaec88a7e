"""Calibration from measured tables (sim.calibration): the vectorised fit formulas equal the
pricing functions, fits recover the measured times on held-out rows, and the CLI writes TOMLs
every command accepts. Data: slices of ../shared/data in tests/data/kernels (README there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware import get_accelerator, get_system
from sim.calibration import fit_nccl
from sim.calibration.fit_kernels import (
    attention_predict,
    features,
    fit_accelerator,
    gemm_predict,
    memory_predict,
)
from sim.calibration.rows import load_rows, row_op
from sim.cli.main import main
from sim.costs.timing import kernel_time

DATA = Path(__file__).parent / "data" / "kernels"
SLICE = DATA / "kernels_slice.csv"


@pytest.fixture(scope="module")
def rows():
    return load_rows(SLICE)


def _x_gemm(acc):
    e, g = acc.efficiency, acc.efficiency.gemm
    rel = [t[2] for t in g.tiles]
    return [e.matmul_max, rel[2], rel[3], rel[5], e.matmul_memory_bandwidth, g.k_overhead,
            g.sharpness, g.min_wave, g.fixed_s * 1e6]


def _x_memory(acc):
    m = acc.efficiency.memory
    cls = ("norm", "act", "rope", "residual")
    return ([m.fractions[c] for c in cls] + [m.floors[c] * 1e6 for c in cls]
            + [m.cache_bytes / 1e6, m.cache_speedup, m.sharpness])


def _x_attention(acc):
    a = acc.efficiency.attention
    return [acc.efficiency.attention_max, a.decode_memory_bandwidth, a.prefill_seq_s * 1e6,
            a.decode_seq_s * 1e6, a.floor_s * 1e6, a.sharpness]


@pytest.mark.parametrize("group,kinds,predict,params", [
    ("gemm", ("gemm",), gemm_predict, _x_gemm),
    ("memory", ("norm", "act", "rope", "residual_add"), memory_predict, _x_memory),
    ("attention", ("attn_prefill", "attn_decode"), attention_predict, _x_attention),
])
def test_the_vectorised_fit_formula_equals_kernel_time_row_by_row(rows, group, kinds, predict,
                                                                  params):
    acc = get_accelerator("a100-sxm-80gb")
    sub = rows[(rows["gpu"] == acc.name) & rows["op_kind"].isin(kinds)]
    vec = predict(params(acc), features(sub, acc, "fp16"), acc, "fp16")
    scalar = [kernel_time(row_op(r, "fp16"), acc, "fp16") for _, r in sub.iterrows()]
    assert len(sub) > 5
    np.testing.assert_allclose(vec, scalar, rtol=1e-9)


def test_a_gemm_fit_on_two_models_predicts_the_third_within_the_target(rows):
    fit = fit_accelerator(rows[rows["op_kind"] == "gemm"], get_accelerator("h100-sxm"))
    held = fit.heldout["gemm"]
    assert held["count"] == 192  # 3 models x 2 tp x 8 m x 4 GEMMs
    assert held["median_abs_error"] < 0.12
    assert 0.6 < fit.params["gemm"]["matmul_max"] < 1.0


def test_nccl_tests_tables_are_read_with_size_time_and_gpus():
    t = fit_nccl.read_nccl_tests(DATA / "AR_GPU8_1M_1024M_LUT.csv")
    assert len(t) == 26 and set(t["n_gpus"]) == {8} and set(t["op_kind"]) == {"all_reduce"}
    assert t["bytes"].iloc[0] == 1048576 and t["measured_s"].iloc[0] == pytest.approx(92790e-9)


def test_the_nvlink_fit_holds_out_whole_size_decades_and_stays_within_15_percent(rows):
    t = fit_nccl.read_nccl_tests(DATA / "AR_GPU8_1M_1024M_LUT.csv")
    fit = fit_nccl.fit_link(t, 300e9, nvls=False)
    assert fit.heldout["all"]["count"] == 26
    assert fit.heldout["all"]["median_abs_error"] < 0.15
    assert fit.heldout["le_64KiB"] is None  # the table starts at 1 MiB


def test_calibrate_from_profile_writes_an_accelerator_that_op_matmul_accepts(tmp_path, capsys):
    out = tmp_path / "h100.toml"
    sub = load_rows(SLICE)
    small = tmp_path / "gemms.csv"
    sub[(sub["gpu"] == "h100-sxm") & (sub["op_kind"] == "gemm")].to_csv(small, index=False)
    assert main(["calibrate", "--from-profile", str(small), "--accelerator", "h100-sxm",
                 "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["heldout_method"] == "leave-one-model-out"
    assert set(doc["parameters"]) == {"gemm"} and doc["heldout"]["gemm"]["count"] == 192
    acc = get_accelerator(str(out))
    assert acc.efficiency.matmul_max == pytest.approx(doc["parameters"]["gemm"]["matmul_max"],
                                                      abs=1e-4)
    assert main(["op", "matmul", "--accelerator", str(out), "--m", "4096", "--n", "4096",
                 "--k", "4096", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["time_s"] > 0


def test_calibrate_from_nccl_tests_writes_a_system_that_op_collective_accepts(tmp_path, capsys):
    out = tmp_path / "dgx.toml"
    assert main(["calibrate", "--from-nccl-tests", str(DATA / "AR_GPU8_1M_1024M_LUT.csv"),
                 "--system", "dgx-a100-80gb", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["heldout_method"] == "leave-one-size-decade-out" and doc["gpus"] == [8]
    assert get_system(str(out)).intra_link.nccl.simple_bandwidth == pytest.approx(
        doc["parameters"]["simple_bandwidth"], abs=1e-4)
    assert main(["op", "collective", "--system", str(out), "--kind", "all_reduce",
                 "--bytes", str(2**30), "--gpus", "8", "--json"]) == 0
    measured = 8193000e-9  # vTrain AR_GPU8 at 1 GiB
    assert json.loads(capsys.readouterr().out)["time_s"] == pytest.approx(measured, rel=0.1)


def test_calibrate_from_profile_without_accelerator_is_a_json_error(capsys):
    assert main(["calibrate", "--from-profile", str(SLICE), "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert "--accelerator" in err["message"]
