"""``clustersim lab``: the lesson lab, a local web app (predict, simulate, see why).

Starts the Starlette app (``sim.cli.lab.app``) under uvicorn on loopback by default. No login,
no internet: every page and script is served from this package and the ``plotly`` package.
"""

from __future__ import annotations

import argparse

from sim.cli.flags import int_flag

HELP = """\
Open the lesson lab in a browser: explorers that redraw as you move the controls (attention
cost, KV cache, MoE vs dense, parallelism planner, serving), and predict-then-simulate
exercises with hints, a diagnosis of your answer and the worked solution. Every chart shows the
clustersim command that reproduces its numbers. Binds to 127.0.0.1 unless --host says otherwise.

examples:
  clustersim lab
  clustersim lab --port 8010 --open
"""


def register(sub) -> None:
    p = sub.add_parser("lab", help="the lesson lab: a local web app of explorers and exercises",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_flag(0, 65535), default=8000, help="TCP port (default 8000)")
    p.add_argument("--open", action="store_true", help="open the lab in the default browser")
    p.set_defaults(func=run)


def run(args) -> int:
    import threading
    import webbrowser

    import uvicorn

    from sim.cli.lab.app import create_app
    from sim.errors import ConfigError

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: use a TCP port between 1 and 65535")
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    print(f"clustersim lab: serving on {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0
