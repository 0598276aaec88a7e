"""The ``clustersim`` command line. One module per top-level command, each with
``register(subparsers)`` that adds its parser and sets ``func(args) -> int``."""
