"""Entry point of the ``clustersim`` console script.

Each command lives in its own module under ``sim.cli`` and registers itself. A run of one
command imports only that command's module (``clustersim serve`` never loads the training,
sweep or lab modules, nor what they import); ``clustersim --help``, no command or an unknown
one builds the full parser. A ClusterSimError becomes a
one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import os

# Before numpy is imported: the commands do no large linear algebra, and OpenBLAS's thread
# pool costs ~60 ms of every command's start-up (numpy 2.4 on this 2-core machine: import
# 0.16 s with it, 0.10 s without) and keeps a core spinning. A user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from sim import __version__
from sim.cli.flags import CliParser, explicit_flags, wants_json
from sim.errors import ClusterSimError

COMMANDS = (
    "hardware", "model", "train", "serve", "search", "sweep",
    "calibrate", "validate", "report", "exercise", "stack", "explore", "lab", "op",
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser with every command (``only``: with that one command alone, for a run
    of it; parsing its arguments gives the same result and the same errors)."""
    parser = CliParser(
        prog="clustersim", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clustersim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only else COMMANDS:
        try:
            module = importlib.import_module(f"sim.cli.{name}")
        except ModuleNotFoundError as exc:  # command not built in this checkout
            if exc.name != f"sim.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


@functools.cache
def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, built once per process and command (parsing never mutates it; 27
    subparsers and 200 flags take ~10 ms to build, which dominated in-process runs such as
    the fuzz suite)."""
    return build_parser(only)


def _command(argv: list[str] | None) -> str | None:
    """The command ``argv`` runs when it names one first (then only its module is
    imported), else None (help, --version, a typo: the full parser answers)."""
    args = sys.argv[1:] if argv is None else argv
    return args[0] if args and args[0] in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    as_json = wants_json(argv)
    old_term = _term_as_interrupt()
    try:
        parser = _parser(_command(argv))
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        args.explicit_flags = explicit_flags(argv)
        return int(args.func(args) or 0)
    except ClusterSimError as exc:
        return report_error(exc, as_json)
    except KeyboardInterrupt:
        print("clustersim: interrupted (Ctrl-C); outputs already written are complete",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _term_as_interrupt():
    """SIGTERM (``kill PID``) stops a run like Ctrl-C: partial outputs written atomically,
    sweep workers terminated. Returns the previous handler (None off the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread (e.g. called from a worker thread)
        return None


def report_error(exc: ClusterSimError, as_json: bool) -> int:
    """One line on stderr, or ``{"error": {...}}`` on stdout under ``--json``; exit status 2."""
    message = " ".join(str(exc).split())
    if as_json:
        err = {"type": type(exc).__name__, "message": message}
        for key in ("flag", "field"):
            if getattr(exc, key, None):
                err[key] = exc.field if key == "field" else exc.flag
        if "flag" not in err and "field" not in err:
            _name_input(err, exc, message)
        sys.stdout.write(json.dumps({"error": err}) + "\n")
    else:
        print(f"clustersim: error: {message}", file=sys.stderr)
    return exc.exit_code


NAME_FLAGS = {"model": "--model", "hardware": "--system"}


def _name_input(err: dict, exc: ClusterSimError, message: str) -> None:
    """Fill ``flag`` (or ``field``) for an error raised without one."""
    kind = getattr(exc, "kind", None)
    if kind is not None:  # UnknownNameError
        if kind in NAME_FLAGS and kind != "hardware":
            err["flag"] = NAME_FLAGS[kind]
        else:
            err["field"] = kind
        return
    err["flag"] = _guess_flag(message)


PLAN_KEYS = {"tp": "--tp", "pp": "--pp", "dp": "--dp", "ep": "--ep", "cp": "--cp",
             "zero": "--zero", "micro_batch": "--micro-batch", "global_batch": "--global-batch",
             "seq_len": "--seq", "virtual_stages": "--virtual-stages"}


def _guess_flag(message: str) -> str | None:
    """The flag a message names: ``--flag`` in its text, else a plan key (``tp=3``)."""
    import re

    from sim.cli.flags import first_flag

    flag = first_flag(message)
    if flag:
        return flag
    m = re.search(r"\b(" + "|".join(PLAN_KEYS) + r")\s*=", message)
    return PLAN_KEYS[m.group(1)] if m else None


if __name__ == "__main__":
    sys.exit(main())
