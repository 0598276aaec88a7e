"""The strict loader: good files load (catalog, paths, self-contained systems, round trip through
to_toml); every kind of bad file is a HardwareError naming the file and the key."""

import re
from pathlib import Path

import pytest

import hardware
from hardware.loader import DATA
from hardware.units import parse_quantity
from sim.errors import HardwareError, UnknownNameError

H100 = (DATA / "accelerators" / "h100-sxm.toml").read_text()
NDR = (DATA / "links" / "ib-ndr.toml").read_text()
DGX = (DATA / "systems" / "dgx-h100.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "item.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def raises_naming(path: Path, key: str, pattern: str, loader=hardware.get_accelerator):
    with pytest.raises(HardwareError) as info:
        loader(path)
    msg = str(info.value)
    assert str(path) in msg and f"'{key}'" in msg, msg
    assert re.search(pattern, msg), msg


# --- good files ---------------------------------------------------------------------------------
def test_every_catalog_item_loads_and_list_catalog_counts_them():
    items = hardware.list_catalog()
    kinds = [d["kind"] for d in items]
    assert (kinds.count("accelerator"), kinds.count("link"), kinds.count("system")) == (10, 13, 9)
    for d in items:
        assert hardware.get_any(d["name"]).name == d["name"]


@pytest.mark.parametrize("name", [d["name"] for d in hardware.list_catalog()])
def test_to_toml_round_trips_every_catalog_item_exactly(tmp_path, name):
    obj = hardware.get_any(name)
    path = write(tmp_path, hardware.to_toml(obj))
    getter = {"accelerator": hardware.get_accelerator, "link": hardware.get_link,
              "system": hardware.get_system}[obj.kind]
    assert getter(path) == obj
    assert getter(str(path)) == obj


def test_a_self_contained_system_file_holds_its_accelerator_and_links_inline(tmp_path):
    text = hardware.to_toml(hardware.get_system("dgx-a100-80gb"))
    assert "[accelerator]" in text and "[intra_node.link]" in text
    assert "[inter_node.nic_link]" in text
    measured = edit(text, 'name = "a100-sxm-80gb"', 'name = "a100-measured"')
    system = hardware.get_system(write(tmp_path, measured))
    assert system.accelerator.name == "a100-measured"
    assert system.accelerator.peak("bf16") == 312e12


def test_a_system_may_name_its_accelerator_by_relative_path(tmp_path):
    write(tmp_path, edit(H100, 'name = "h100-sxm"', 'name = "my-gpu"'), "my-gpu.toml")
    system = hardware.get_system(write(tmp_path, edit(DGX, 'accelerator = "h100-sxm"',
                                                      'accelerator = "my-gpu.toml"')))
    assert system.accelerator.name == "my-gpu"


def test_quantities_parse_decimal_binary_and_bit_units():
    assert parse_quantity("80 GiB", "bytes") == 80 * 2**30
    assert parse_quantity("3.35 TB/s", "bandwidth") == 3.35e12
    assert parse_quantity("400 Gb/s", "bandwidth") == 50e9
    assert parse_quantity("989.4 TFLOP/s", "flop_rate") == pytest.approx(989.4e12)
    assert parse_quantity("4 us", "time") == pytest.approx(4e-6)


def test_specs_are_frozen_and_hashable():
    a = hardware.get_accelerator("h100-sxm")
    with pytest.raises(AttributeError):
        a.memory_bytes = 1
    assert hash(hardware.get_system("dgx-h100")) == hash(hardware.get_system("dgx-h100"))


# --- bad files ----------------------------------------------------------------------------------
def test_unknown_catalog_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean: h100-sxm"):
        hardware.get_accelerator("h100-smx")


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = write(tmp_path, edit(H100, "vendor =", "colour = \"green\"\nvendor ="))
    raises_naming(path, "colour", "unknown key")


def test_unknown_nested_key_names_the_dotted_key(tmp_path):
    path = write(tmp_path, edit(H100, "matmul_max = 0.7995", "matmul_max = 0.7995\nmatmul_min = 0.1"))
    raises_naming(path, "efficiency.matmul_min", "unknown key")


def test_missing_key_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, 'memory_bandwidth = "3.35 TB/s"\n', ""))
    raises_naming(path, "memory_bandwidth", "missing")


def test_missing_kind_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, 'kind = "accelerator"\n', ""))
    raises_naming(path, "kind", "missing")


def test_wrong_kind_is_an_error(tmp_path):
    raises_naming(write(tmp_path, NDR), "kind", "expected 'accelerator'")


def test_wrong_type_is_an_error(tmp_path):
    path = write(tmp_path, edit(DGX, "gpus_per_node = 8", 'gpus_per_node = "8"'))
    raises_naming(path, "gpus_per_node", "integer", hardware.get_system)


def test_wrong_unit_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, 'memory = "80 GiB"', 'memory = "80 GB/s"'))
    raises_naming(path, "memory", "not a bytes unit")


def test_bare_number_for_a_quantity_is_an_error(tmp_path):
    path = write(tmp_path, edit(NDR, 'latency = "2.7 us"', "latency = 2.7e-6"))
    raises_naming(path, "latency", "string with a time unit", hardware.get_link)


def test_flops_unit_on_a_bandwidth_is_an_error(tmp_path):
    path = write(tmp_path, edit(NDR, '"400 Gb/s"', '"400 TFLOP/s"'))
    raises_naming(path, "bandwidth_per_direction", "not a bandwidth unit", hardware.get_link)


def test_unit_string_on_a_dimensionless_fraction_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, "matmul_max = 0.7995", 'matmul_max = "75 %"'))
    raises_naming(path, "efficiency.matmul_max", "dimensionless")


def test_fraction_above_one_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, "attention_max = 0.35", "attention_max = 45"))
    raises_naming(path, "efficiency.attention_max", "0 < x <= 1")


def test_unknown_dtype_is_an_error(tmp_path):
    path = write(tmp_path, edit(H100, 'fp8 = "1978.9 TFLOP/s"', 'int3 = "1 TFLOP/s"'))
    raises_naming(path, "peak_flops.int3", "unknown dtype")


def test_number_without_source_is_an_error(tmp_path):
    text = edit(H100, 'memory_bandwidth = "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: '
                      '3.35TB/s)"\n', "")
    raises_naming(write(tmp_path, text), "memory_bandwidth", "has no source")


def test_empty_source_is_an_error(tmp_path):
    path = write(tmp_path, edit(NDR, 'latency = "NCCL', 'latency = "" # "NCCL'))
    raises_naming(path, "sources.latency", "non-empty", hardware.get_link)


def test_invalid_toml_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path, H100 + "\n[broken\n")
    with pytest.raises(HardwareError, match=re.escape(str(path)) + ".*not valid TOML"):
        hardware.get_accelerator(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(HardwareError, match="no such hardware file"):
        hardware.get_system(tmp_path / "absent.toml")


def test_system_naming_an_unknown_accelerator_is_an_error(tmp_path):
    path = write(tmp_path, edit(DGX, 'accelerator = "h100-sxm"', 'accelerator = "h100-sxn"'))
    raises_naming(path, "accelerator", "did you mean: h100-sxm", hardware.get_system)


def test_nics_that_do_not_divide_the_gpus_are_an_error(tmp_path):
    path = write(tmp_path, edit(DGX, "nics_per_node = 8", "nics_per_node = 3"))
    raises_naming(path, "inter_node.nics_per_node", "divisor", hardware.get_system)


def test_mesh_using_more_ports_than_the_gpu_has_is_an_error(tmp_path):
    text = (DATA / "systems" / "dgx-v100.toml").read_text()
    path = write(tmp_path, edit(text, "[0, 1, 1], [0, 2, 1]", "[0, 1, 3], [0, 2, 1]"))
    raises_naming(path, "intra_node.mesh", "uses 8 ports but links_per_gpu is 6",
                  hardware.get_system)


def test_inline_accelerator_errors_name_the_inline_table(tmp_path):
    text = hardware.to_toml(hardware.get_system("dgx-h100"))
    text = edit(text, "matmul_max = 0.7995", "matmul_max = 1.5")
    with pytest.raises(HardwareError, match=r"\[accelerator\].*efficiency.matmul_max"):
        hardware.get_system(write(tmp_path, text))


def test_to_toml_writes_hand_built_specs_with_plain_dicts_and_numpy_scalars(tmp_path):
    import numpy as np

    from hardware.types import Accelerator, EfficiencyModel

    eff = EfficiencyModel(matmul_max=np.float64(0.5), matmul_half_flops=1e9, attention_max=0.4,
                          memory_bandwidth=0.9, kernel_overhead_s=np.float64(3e-6),
                          source="measured")
    acc = Accelerator(name="measured", vendor="cpu", peak_flops={"fp32": np.float64(2e12)},
                      memory_bytes=np.int64(2**34), memory_bandwidth=1e11, efficiency=eff,
                      sources={"memory": "m", "memory_bandwidth": "m", "peak_flops": "m"})
    back = hardware.get_accelerator(write(tmp_path, hardware.to_toml(acc)))
    assert (back.efficiency.matmul_max, back.memory_bytes, back.peak("fp32")) == (
        0.5, 2**34, 2e12)
    assert back.efficiency.source == "measured" and back.efficiency.kernel_overhead_s == 3e-6
