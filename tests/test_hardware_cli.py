"""`clustersim hardware list|show` through the real entry point: exact JSON schemas, values,
readable tables, and the one-line exit-2 error for unknown names."""

import json

import pytest

import hardware
from sim.cli.main import main

ACCELERATOR_KEYS = {"name", "kind", "vendor", "peak_flops", "memory_bytes", "memory_bandwidth",
                    "efficiency", "achievable", "sources", "compute_units"}
EFFICIENCY_KEYS = {"matmul_max", "matmul_half_flops", "attention_max", "memory_bandwidth",
                   "kernel_overhead_s", "attention_kernels"}
SYSTEM_KEYS = {"name", "kind", "accelerator", "gpus_per_node", "intra_node", "inter_node",
               "scale_out", "price_per_gpu_hour", "accelerator_spec", "sources"}
LINK_KEYS = {"name", "kind", "bandwidth", "bandwidth_bidirectional", "latency", "sources"}


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return json.loads(out.out)


def test_list_json_is_a_list_of_name_and_kind(capsys):
    doc = run_json(capsys, "hardware", "list")
    assert doc == hardware.list_catalog()
    assert all(set(d) == {"name", "kind"} for d in doc)
    assert {"name": "gb200-nvl72", "kind": "system"} in doc
    assert {d["kind"] for d in doc} == {"accelerator", "link", "system"}


def test_show_accelerator_json_schema_and_values(capsys):
    doc = run_json(capsys, "hardware", "show", "h100-sxm")
    assert set(doc) == ACCELERATOR_KEYS and set(doc["efficiency"]) == EFFICIENCY_KEYS
    assert doc["kind"] == "accelerator"
    assert doc["peak_flops"]["bf16"] == pytest.approx(989.4e12)
    assert doc["memory_bytes"] == 80 * 2**30 and doc["memory_bandwidth"] == 3.35e12
    assert doc["achievable"]["memory_bandwidth"] == pytest.approx(0.85 * 3.35e12)


def test_show_system_json_schema_and_values(capsys):
    doc = run_json(capsys, "hardware", "show", "dgx-h100")
    assert set(doc) == SYSTEM_KEYS
    assert (doc["kind"], doc["accelerator"], doc["gpus_per_node"]) == ("system", "h100-sxm", 8)
    assert doc["intra_node"]["bandwidth"] == 450e9
    assert doc["intra_node"]["latency"] == pytest.approx(0.6e-6)
    assert doc["inter_node"]["bandwidth"] == 50e9
    assert doc["inter_node"]["latency"] == pytest.approx(2.7e-6)
    assert set(doc["accelerator_spec"]) == ACCELERATOR_KEYS


def test_show_link_json_states_both_directions(capsys):
    doc = run_json(capsys, "hardware", "show", "nvlink4")
    assert set(doc) == LINK_KEYS
    assert (doc["bandwidth"], doc["bandwidth_bidirectional"]) == (25e9, 50e9)


@pytest.mark.parametrize("name", [d["name"] for d in hardware.list_catalog()])
def test_show_json_works_for_every_catalog_item(capsys, name):
    doc = run_json(capsys, "hardware", "show", name)
    assert doc["name"] == name
    assert set(doc) == {"accelerator": ACCELERATOR_KEYS, "link": LINK_KEYS,
                        "system": SYSTEM_KEYS}[doc["kind"]]


def test_show_accepts_a_toml_path(capsys, tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(hardware.to_toml(hardware.get_system("mi300x-8")))
    doc = run_json(capsys, "hardware", "show", str(path))
    assert (doc["name"], doc["intra_node"]["bandwidth"]) == ("mi300x-8", 448e9)


def test_show_table_is_readable(capsys):
    assert main(["hardware", "show", "dgx-h100"]) == 0
    out = capsys.readouterr().out
    assert "450 GB/s per GPU per direction" in out and "rail-optimized" in out


def test_list_table_has_one_row_per_item(capsys):
    assert main(["hardware", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + len(hardware.list_catalog())


def test_unknown_name_exits_2_with_one_line_listing_close_matches(capsys):
    assert main(["hardware", "show", "h100", "--json"]) == 2
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1  # under --json: JSON on stdout
    err = json.loads(out.out)["error"]
    assert "unknown hardware 'h100'; did you mean: h100-sxm" in err["message"]
    assert err["type"] == "UnknownNameError" and err["field"] == "hardware"
