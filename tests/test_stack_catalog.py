"""The software-stack catalog: every contract name loads, every knob has a source, and the
strict loader rejects malformed files with a one-line error naming the key."""

from pathlib import Path

import pytest

from sim.errors import ConfigError, UnknownNameError
from sim.stack import FIELDS, SERVING_DEFAULT, TRAINING_DEFAULT, get_stack, stack_names
from sim.stack.loader import DATA, with_overrides

CONTRACT = ("megatron-lm-2021", "deepspeed-zero3-2021", "megatron-lm-2023",
            "megatron-deepspeed-2023", "megatron-core-2024", "pytorch-fsdp-2024", "vllm-0.2",
            "distserve-2024", "sarathi-2024")


def test_every_stack_named_in_the_issue_is_in_the_catalog():
    assert set(CONTRACT) <= set(stack_names())
    assert TRAINING_DEFAULT == "megatron-core-2024"
    assert get_stack(SERVING_DEFAULT).kind == "serving"


@pytest.mark.parametrize("name", CONTRACT)
def test_every_setting_of_a_stack_cites_a_source(name):
    stack = get_stack(name)
    for f in FIELDS:
        relevant = f.name in ("attention_kernel", "collective_algorithms") or (
            f.serving == (stack.kind == "serving"))
        if relevant:
            assert len(stack.source_of(f.name)) > 10, (name, f.name)


def test_the_2021_stack_differs_from_the_default_where_sc21_says_it_did():
    old, new = get_stack("megatron-lm-2021"), get_stack("megatron-core-2024")
    assert (old.flash, new.flash) == (False, True)
    assert (old.overlap_grad_reduce, new.overlap_grad_reduce) == (False, True)
    assert (old.dropout, new.dropout) == (0.1, 0.0)
    assert get_stack("deepspeed-zero3-2021").zero3_granularity == "parameter"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def _base() -> str:
    return (DATA / "vllm-0.2.toml").read_text()


def test_a_stack_file_outside_the_catalog_loads_by_path(tmp_path):
    stack = get_stack(str(_write(tmp_path, _base())))
    assert stack.name == "vllm-0.2" and stack.scheduler_overhead_s == 0.003


def test_an_unknown_key_is_rejected_naming_it(tmp_path):
    path = _write(tmp_path, _base().replace("cuda_graphs = false", "cuda_graph = false"))
    with pytest.raises(ConfigError, match=r"serving\.cuda_graph .*not a stack key"):
        get_stack(str(path))


def test_a_value_of_the_wrong_type_is_rejected(tmp_path):
    path = _write(tmp_path, _base().replace("cuda_graphs = false", "cuda_graphs = 1"))
    with pytest.raises(ConfigError, match="must be true or false"):
        get_stack(str(path))


def test_a_setting_without_a_source_is_rejected(tmp_path):
    text = _base().replace('"serving.cuda_graphs" =', '"unused" =').replace(
        '"unused" = ', '# ')
    with pytest.raises(ConfigError, match=r"sources\.serving\.cuda_graphs .*missing"):
        get_stack(str(_write(tmp_path, text)))


def test_a_missing_knob_is_rejected(tmp_path):
    text = _base().replace("scheduler_overhead_s = 0.003\n", "")
    with pytest.raises(ConfigError, match="scheduler_overhead_s .*missing"):
        get_stack(str(_write(tmp_path, text)))


def test_an_unknown_stack_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="megatron-lm-2021"):
        get_stack("megatron-lm-2012")


def test_overrides_are_checked_and_recorded_as_their_own_source():
    stack = with_overrides(get_stack("megatron-core-2024"),
                           {"zero3_prefetch": 3.0, "attention_kernel": "fa3"})
    assert (stack.zero3_prefetch, stack.attention_kernel) == (3, "fa3")
    assert stack.source_of("zero3_prefetch") == "set on the command line"
    with pytest.raises(ConfigError, match="--overlap-slowdown"):
        with_overrides(stack, {"overlap_slowdown": 1.5})
