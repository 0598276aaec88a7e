"""The console script itself: --help teaches, --version, every command's --help, and the real
installed `clustersim` executable prints one JSON document and exits 2 on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim import __version__
from sim.cli.main import build_parser, main

CLUSTERSIM = Path(sys.executable).parent / "clustersim"


def test_help_lists_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "clustersim hardware list" in out and "examples:" in out


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"clustersim {__version__}"


def test_no_command_prints_help_and_succeeds(capsys):
    assert main([]) == 0
    assert "usage: clustersim" in capsys.readouterr().out


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_has_an_example(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("sub", ["list", "show"])
def test_hardware_subcommand_help_explains_json(capsys, sub):
    with pytest.raises(SystemExit):
        main(["hardware", sub, "--help"])
    assert "--json" in capsys.readouterr().out


@pytest.mark.skipif(not CLUSTERSIM.exists(), reason="console script not installed")
def test_installed_script_prints_exactly_one_json_document():
    done = subprocess.run([str(CLUSTERSIM), "hardware", "show", "a100-sxm-80gb", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    doc = json.loads(done.stdout)
    assert (doc["name"], doc["peak_flops"]["bf16"]) == ("a100-sxm-80gb", 312e12)


@pytest.mark.skipif(not CLUSTERSIM.exists(), reason="console script not installed")
def test_installed_script_unknown_name_exits_2_without_traceback():
    done = subprocess.run([str(CLUSTERSIM), "hardware", "show", "dgx-h1000"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("clustersim: error: unknown hardware 'dgx-h1000'")
