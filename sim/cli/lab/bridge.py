"""JSON options -> the CLI's own argv, parser and command function -> the CLI's JSON document.

The HTTP API never re-implements a command: a JSON object such as ``{"model": "llama3-8b",
"gpus": 8, "tp": 8, "sequence_parallel": true}`` becomes ``train --model=llama3-8b --gpus=8
--tp=8 --sequence-parallel --json`` and is run by the CLI's own ``sim.cli.main.main`` with its
stdout captured (so every flag, default, choice, type check and validation added to the CLI
applies here too). Keys are the argparse ``dest`` names or the flag spelled with dashes (read
from ``build_parser()``); an unknown key or any error the CLI reports is a ``BadRequest``
carrying the CLI's one-line message.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import threading

from sim.errors import ClusterSimError

# Options that write files on the server: refused over HTTP (the lab writes nothing).
FILE_OUTPUTS = {("train",): {"trace", "timeline"}, ("serve",): {"charts"}}
_LOCK = threading.Lock()  # command functions print to sys.stdout: one at a time


class BadRequest(Exception):
    """Bad input: ``message`` is the line the CLI would print after ``error:``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@functools.lru_cache(maxsize=1)
def root_parser() -> argparse.ArgumentParser:
    """The CLI's parser, read (never used to run) to list each command's flags."""
    from sim.cli.main import build_parser

    return build_parser()


def subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = root_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def options(path: tuple[str, ...]) -> dict[str, argparse.Action]:
    """Optional flags of command ``path`` by dest (``--json`` and ``--help`` left out)."""
    return {a.dest: a for a in subparser(path)._actions
            if a.option_strings and a.dest not in ("help", "json")}


def _flag_argv(action: argparse.Action, value) -> list[str]:
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:  # store_true / store_false / count
        if not isinstance(value, bool):
            raise BadRequest(f"argument {flag}: expects true or false, got {json.dumps(value)}")
        return [flag] if value else []
    if value is None:
        return []
    if isinstance(value, (dict, list)):
        raise BadRequest(f"argument {flag}: expects one value, got {json.dumps(value)}")
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return [f"{flag}={text}"]


def to_argv(path: tuple[str, ...], opts: dict, positionals: tuple[str, ...] = ()) -> list[str]:
    """The argv of ``clustersim <path> <positionals> <flags>`` for JSON ``opts``."""
    if not isinstance(opts, dict):
        raise BadRequest("the request body must be a JSON object of the command's options")
    known = options(path)
    by_name = {**known, **{k.replace("_", "-"): a for k, a in known.items()}}
    refused = FILE_OUTPUTS.get(path, set())
    argv = [*path, *positionals]
    for key, value in opts.items():
        action = by_name.get(key)
        if action is None:
            raise BadRequest(f"unknown option '{key}' for `clustersim {' '.join(path)}`; "
                             f"known: {', '.join(sorted(known))}")
        if action.dest in refused:
            raise BadRequest(f"option '{key}' writes a file on the server and is not available "
                             "over HTTP; run the CLI command shown in the lab instead")
        argv += _flag_argv(action, value)
    return argv


def command_line(argv: list[str]) -> str:
    """The shell command a learner can paste (``--json`` appended)."""
    import shlex

    return "clustersim " + " ".join(shlex.quote(a) for a in [*argv, "--json"])


def check_argv(argv: list[str]) -> None:
    """Parse ``argv`` as the CLI would (flags, types, choices) without running it."""
    try:
        root_parser().parse_args([*argv, "--json"])
    except ClusterSimError as exc:
        raise BadRequest(" ".join(str(exc).split())) from None
    except SystemExit as exc:
        raise BadRequest(f"invalid arguments for `clustersim {argv[0]}` "
                         f"(exit status {exc.code})") from None


def run_argv(argv: list[str]) -> dict | list:
    """Run ``clustersim <argv> --json`` through the CLI's own ``main`` (parser, validation,
    error reporting) with its stdout captured; the document, or BadRequest with the message
    the CLI reports (``{"error": {"message": ...}}`` under --json, one line otherwise)."""
    from sim.cli.main import main

    out = io.StringIO()
    with _LOCK, contextlib.redirect_stdout(out):
        try:
            status = main([*argv, "--json"])
        except ClusterSimError as exc:  # a CLI that lets it through
            raise BadRequest(" ".join(str(exc).split())) from None
        except SystemExit as exc:  # argparse's own exit (usage error, --help)
            raise BadRequest(f"invalid arguments for `clustersim {' '.join(argv[:2])}` "
                             f"(exit status {exc.code})") from None
    return _document(out.getvalue(), status)


def _document(text: str, status: int):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise BadRequest(f"the command printed no JSON document (exit status {status})",
                         500 if status == 0 else 400) from None
    if status != 0:
        error = doc.get("error") if isinstance(doc, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise BadRequest(message if isinstance(message, str) else json.dumps(doc))
    return doc


@functools.lru_cache(maxsize=512)
def _cached(argv: tuple[str, ...]) -> str:
    return json.dumps(run_argv(list(argv)))


def run_cached(argv: list[str]):
    """``run_argv`` memoised by argv: analytic commands are pure functions of their flags."""
    return json.loads(_cached(tuple(argv)))
