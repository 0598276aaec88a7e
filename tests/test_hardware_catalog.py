"""Catalog values against their datasheets (dense peaks, per-direction bandwidths)."""

import pytest

import hardware
from sim.errors import HardwareError

GiB = 2**30


@pytest.mark.parametrize("name, dtype, flops", [
    ("h100-sxm", "bf16", 989.4e12), ("h100-sxm", "fp8", 1978.9e12), ("h100-sxm", "tf32", 494.7e12),
    ("h100-pcie", "bf16", 756e12), ("h800-sxm", "bf16", 989.4e12), ("h800-sxm", "fp64", 1e12),
    ("h200-sxm", "bf16", 989.4e12), ("a100-sxm-40gb", "bf16", 312e12),
    ("a100-sxm-80gb", "tf32", 156e12), ("v100-sxm2-32gb", "fp16", 125e12),
    ("b200", "bf16", 2250e12), ("b200", "fp4", 9000e12), ("gb200", "bf16", 2500e12),
    ("mi300x", "bf16", 1307.4e12), ("mi300x", "fp8", 2614.9e12),
])
def test_dense_peak_matches_datasheet(name, dtype, flops):
    assert hardware.get_accelerator(name).peak(dtype) == pytest.approx(flops, rel=1e-12)


@pytest.mark.parametrize("name, memory, bandwidth", [
    ("h100-sxm", 80 * GiB, 3.35e12), ("h100-pcie", 80 * GiB, 2.0e12),
    ("h200-sxm", 141 * GiB, 4.8e12), ("a100-sxm-40gb", 40 * GiB, 1555e9),
    ("a100-sxm-80gb", 80 * GiB, 2039e9), ("v100-sxm2-32gb", 32 * GiB, 900e9),
    ("b200", 180 * GiB, 8e12), ("mi300x", 192 * GiB, 5.3e12),
])
def test_hbm_capacity_and_bandwidth_match_datasheet(name, memory, bandwidth):
    a = hardware.get_accelerator(name)
    assert a.memory_bytes == memory
    assert a.memory_bandwidth == pytest.approx(bandwidth, rel=1e-12)


def test_v100_has_no_bf16_and_says_so():
    with pytest.raises(HardwareError, match="no bf16 peak.*fp16"):
        hardware.get_accelerator("v100-sxm2-32gb").peak("bf16")


def test_no_accelerator_quotes_a_sparsity_figure():
    # dense tensor peaks keep the architectural ratios fp8 = 2 x bf16 = 4 x tf32; one
    # "with sparsity" figure mixed in (2x its dense value) would break them
    for d in hardware.list_catalog():
        if d["kind"] == "accelerator":
            p = hardware.get_accelerator(d["name"]).peak_flops
            if "bf16" in p and "fp8" in p:
                assert p["fp8"] == pytest.approx(2 * p["bf16"], rel=1e-3)
            if "tf32" in p and "bf16" in p:
                assert p["bf16"] == pytest.approx(2 * p["tf32"], rel=1e-3)


@pytest.mark.parametrize("name, per_direction", [
    ("nvlink2", 25e9), ("nvlink3", 25e9), ("nvlink4", 25e9), ("nvlink5", 50e9),
    ("pcie4-x16", 31.5e9), ("pcie5-x16", 63e9), ("ib-edr", 12.5e9), ("ib-hdr", 25e9),
    ("ib-ndr", 50e9), ("ib-xdr", 100e9), ("roce-400g", 50e9), ("xgmi-mi300x", 64e9),
])
def test_link_bandwidth_is_per_direction(name, per_direction):
    assert hardware.get_link(name).bandwidth == pytest.approx(per_direction, rel=1e-12)


@pytest.mark.parametrize("name, intra, inter", [
    ("dgx-v100", 150e9, 50e9 / 8), ("dgx-a100-40gb", 300e9, 25e9), ("dgx-a100-80gb", 300e9, 25e9),
    ("dgx-h100", 450e9, 50e9), ("dgx-h800", 200e9, 50e9), ("hgx-h200", 450e9, 50e9),
    ("dgx-b200", 900e9, 50e9), ("gb200-nvl72", 900e9, 50e9), ("mi300x-8", 448e9, 50e9),
])
def test_system_per_gpu_bandwidths_are_half_the_bidirectional_datasheet_totals(name, intra,
                                                                              inter):
    # e.g. DGX H100: "900 GB/s bidirectional GPU-to-GPU" -> 450e9 each way; NDR 400 Gb/s/GPU
    s = hardware.get_system(name)
    assert s.intra_node_bandwidth == pytest.approx(intra, rel=1e-12)
    assert s.inter_node_bandwidth == pytest.approx(inter, rel=1e-12)


def test_gb200_nvl72_is_one_72_gpu_nvlink_domain():
    s = hardware.get_system("gb200-nvl72")
    assert (s.gpus_per_node, s.accelerator.name, s.intra_topology) == (72, "gb200", "switch")


def test_dgx_v100_cube_mesh_gives_each_gpu_six_ports():
    s = hardware.get_system("dgx-v100")
    ports = [0] * 8
    for a, b, n in s.intra_mesh:
        ports[a] += n
        ports[b] += n
    assert ports == [6] * 8 and len(s.intra_mesh) == 16


def test_every_system_with_a_price_has_a_source_for_it():
    for d in hardware.list_catalog():
        if d["kind"] == "system":
            s = hardware.get_system(d["name"])
            if s.price_per_gpu_hour is not None:
                assert "price_per_gpu_hour" in s.sources
    assert hardware.get_system("dgx-h100").price_per_gpu_hour == 2.99
