"""SM counts are catalog data (with sources) and drive GEMM wave quantisation."""

import hardware
from sim.costs.timing import wave_efficiency


def test_sm_counts_match_the_architecture_whitepapers():
    got = {n: hardware.get_accelerator(n).compute_units
           for n in ("a100-sxm-80gb", "h100-sxm", "h100-pcie", "v100-sxm2-32gb")}
    assert got == {"a100-sxm-80gb": 108, "h100-sxm": 132, "h100-pcie": 114, "v100-sxm2-32gb": 80}


def test_compute_units_round_trip_through_the_toml_writer(tmp_path):
    path = tmp_path / "a100.toml"
    path.write_text(hardware.to_toml(hardware.get_accelerator("a100-sxm-80gb")))
    assert hardware.get_accelerator(str(path)).compute_units == 108


def test_a_2048_by_2304_gemm_on_108_sms_runs_three_waves_at_89_percent():
    # 2048/128 x 2304/128 = 288 tiles of 128x128 -> 3 waves of 108 SMs: 288 / 324 = 0.889
    assert abs(wave_efficiency(2048, 2304, 108) - 288 / 324) < 1e-9
