"""Entry point of the ``clustersim`` console script.

Each command lives in its own module under ``sim.cli`` and registers itself; heavy imports
happen inside the command, so ``clustersim --help`` stays fast. A ClusterSimError becomes a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sim import __version__
from sim.errors import ClusterSimError

COMMANDS = (
    "hardware", "model", "train", "serve", "search", "sweep",
    "calibrate", "validate", "report", "exercise", "explore", "lab",
)

DESCRIPTION = """\
clustersim predicts where a dense or Mixture-of-Experts transformer spends its time and
memory on a GPU cluster, for training (every parallelism) and serving (every batching policy).

examples:
  clustersim hardware list
  clustersim model show llama3-8b
  clustersim train --model llama3-70b --system dgx-h100 --gpus 64 --tp 8 --pp 4 \\
      --global-batch 512 --seq 4096
  clustersim serve --model llama3-8b --system dgx-h100 --tp 1 --policy continuous \\
      --arrival-rate 5 --num-requests 500 --prompt-tokens 512 --output-tokens 128
  clustersim report            # simulate every built-in scenario, write reports/index.md
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clustersim", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clustersim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sim.cli.{name}")
        except ModuleNotFoundError as exc:  # command not built in this checkout
            if exc.name != f"sim.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ClusterSimError as exc:
        print(f"clustersim: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
