"""Typed errors. Every user-facing failure is a ClusterSimError subclass whose message names
the broken constraint and how to fix it; the CLI prints it on one line and exits with status 2."""

from __future__ import annotations

import difflib


class ClusterSimError(Exception):
    """Base class of every error clustersim raises on bad input.

    ``flag`` (a CLI flag such as ``--tp``) or ``field`` (``FILE: key``) names the offending
    input when the raiser knows it; ``--json`` reports them in ``{"error": {...}}``.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, flag: str | None = None,
                 field: str | None = None):
        super().__init__(" ".join(str(message).split()))  # one line, always
        self.flag, self.field = flag, field


class ConfigError(ClusterSimError):
    """A configuration file or value is malformed (unknown/missing key, wrong type or unit)."""


class HardwareError(ConfigError):
    """A hardware catalog file is malformed."""


class ModelError(ConfigError):
    """A model configuration is malformed or unsupported."""


class PlanError(ClusterSimError):
    """A parallel plan violates a divisibility or size constraint."""


class FlagError(ConfigError):
    """A command-line flag is missing, unparseable or out of range (named in ``flag``)."""


class WorkLimitError(ClusterSimError):
    """The requested run would exceed what this machine can simulate (events or memory)."""


class OutputPathError(ConfigError):
    """An output path cannot be written, or would overwrite one of the run's inputs."""


class UnknownNameError(ClusterSimError, KeyError):
    """A named catalog entry (GPU, system, model preset, exercise...) does not exist."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name = kind, name
        close = difflib.get_close_matches(name, list(known), n=4, cutoff=0.4)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        super().__init__(f"unknown {kind} '{name}'{hint} ({_see_all(kind, known)})")
        self.flag = self.field = None

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


LIST_COMMANDS = {"hardware": "hardware list", "model": "model list", "exercise": "exercise list",
                 "stack": "stack list"}


def _see_all(kind: str, known) -> str:
    """Point at the command that lists every name, or list the names when there is none."""
    if kind in LIST_COMMANDS:
        return f"run `clustersim {LIST_COMMANDS[kind]}` to see all"
    names = sorted(known)
    more = f", ... ({len(names)} in all)" if len(names) > 24 else ""
    return f"known: {', '.join(names[:24])}{more}"
