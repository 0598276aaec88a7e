"""JSON options -> the CLI's own argv, parser and command function -> the CLI's JSON document.

The HTTP API never re-implements a command: a JSON object such as ``{"model": "llama3-8b",
"gpus": 8, "tp": 8, "sequence_parallel": true}`` becomes ``train --model=llama3-8b --gpus=8
--tp=8 --sequence-parallel --json``, is parsed by ``sim.cli.main.build_parser()`` (so every
flag, default, choice and type check added to the CLI applies here too) and run by the
command's own ``func`` with its stdout captured. Keys are the argparse ``dest`` names or the
flag spelled with dashes; an unknown key, a type error or a ``ClusterSimError`` is a
``BadRequest`` carrying the CLI's one-line message.
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


class _Raise(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit 2
        raise BadRequest(message)


@functools.lru_cache(maxsize=1)
def root_parser() -> argparse.ArgumentParser:
    from sim.cli.main import build_parser

    parser = build_parser()
    _make_raising(parser)
    return parser


def _make_raising(parser: argparse.ArgumentParser) -> None:
    parser.__class__ = _Raise
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _make_raising(child)


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


def run_argv(argv: list[str]) -> dict | list:
    """Parse ``argv`` with the CLI's parser, run its command with ``--json``, return the doc."""
    args = root_parser().parse_args([*argv, "--json"])
    out = io.StringIO()
    with _LOCK, contextlib.redirect_stdout(out):
        try:
            status = int(args.func(args) or 0)
        except ClusterSimError as exc:
            raise BadRequest(str(exc)) from None
    return _document(out.getvalue(), status)


def _document(text: str, status: int):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise BadRequest(f"the command printed no JSON document (exit status {status})",
                         500) from None
    if status != 0:  # a command that reports its own error as JSON under --json
        message = doc.get("error") if isinstance(doc, dict) else None
        raise BadRequest(message if isinstance(message, str) else json.dumps(doc))
    return doc


@functools.lru_cache(maxsize=512)
def _cached(argv: tuple[str, ...]) -> str:
    return json.dumps(run_argv(list(argv)))


def run_cached(argv: list[str]):
    """``run_argv`` memoised by argv: analytic commands are pure functions of their flags."""
    return json.loads(_cached(tuple(argv)))
