"""The README's example is real: running its command prints exactly the output shown."""

import re
import shlex
from pathlib import Path

from sim.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _console_blocks():
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        command, _, output = block.partition("\n")
        yield command.removeprefix("$ "), output


def test_readme_opens_with_the_report_and_test_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "make report", "make test"]


def test_readme_example_output_matches_what_the_code_prints(capsys):
    blocks = list(_console_blocks())
    assert blocks, "README has no console example"
    for command, expected in blocks:
        argv = shlex.split(command)
        assert argv[0] == "clustersim"
        assert main(argv[1:]) == 0
        assert capsys.readouterr().out == expected
