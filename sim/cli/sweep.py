"""``clustersim sweep``: run a grid of train/serve what-ifs from a TOML file into one table.

Each point of the grid is run (in parallel on local processes, or on a Dask cluster), stored
as it finishes, and the results written as one tidy table (one row per point, its effective
config included) to Parquet or CSV. Rerunning skips the points already computed; an
interrupted run leaves the previous table intact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.cli.common import add_json_flag, emit_json
from sim.cli.flags import FlagValueError, pos_int

EPILOG = """\
example sweep file (tp.toml):
  kind = "train"
  [base]
  model = "llama3-8b"
  system = "dgx-h100"
  gpus = 8
  global_batch = 64
  seq = 4096
  [grid]
  tp = [1, 2, 4, 8]
  recompute = ["none", "selective", "full"]

examples:
  clustersim sweep tp.toml --out tp.parquet --workers 2
  clustersim sweep tp.toml --out tp.csv --json
  clustersim sweep tp.toml --dask-scheduler tcp://10.0.0.5:8786

Parameters are those of `clustersim train` (underscored: global_batch, micro_batch, ...,
engine = "des") or of `clustersim serve` (kind = "serve": tp, replicas, policy, max_batch,
arrival_rate, num_requests, prompt_tokens, output_tokens, ...). Per-point records live in
OUT.points/ (delete it to recompute everything).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run a grid of train/serve what-ifs into a table",
                              description=__doc__, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.toml", help="the sweep file")
    p.add_argument("--out", metavar="PATH", help="PATH.parquet or PATH.csv "
                   "(default: `out` in the file, else FILE.parquet in the current folder)")
    p.add_argument("--workers", type=pos_int(64), default=None,
                   help="local processes (default: `workers` in the file, else 1)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", default=None, type=_address,
                   help="run on this Dask distributed scheduler (e.g. tcp://host:8786)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _address(text: str) -> str:
    from sim.errors import ConfigError
    from sim.sweep.spec import check_address

    try:
        return check_address(text, "--dask-scheduler")
    except ConfigError as exc:
        raise FlagValueError(f"'{text}' is not a Dask scheduler address; use "
                             "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786") from exc


def run(args) -> int:
    from sim.fileio import check_output
    from sim.sweep import load_sweep, run_sweep
    from sim.sweep.store import check_out

    spec = load_sweep(args.file)
    out = args.out or spec.out or f"{Path(args.file).stem}.parquet"
    check_out(out)
    check_output(out, "--out", inputs=(args.file,))
    result = run_sweep(spec, out=out, workers=args.workers, dask_scheduler=args.dask_scheduler,
                       progress=not args.json and sys.stderr.isatty())
    table = result.table
    doc = {"name": spec.name, "kind": spec.kind, "points": len(table),
           "computed": result.computed, "skipped": result.skipped,
           "errors": int((table["status"] == "error").sum()), "backend": result.backend,
           "out": result.out, "columns": list(table.columns),
           "records": table.to_dict(orient="records")}
    if args.json:
        return emit_json(doc)
    print(f"{spec.name}: {len(table)} points ({result.computed} computed, {result.skipped} "
          f"already stored, {doc['errors']} errors) on {result.backend} -> {result.out}")
    print(table[[c for c in preview_columns(table)]].to_string(index=False))
    return 0


def preview_columns(table) -> list[str]:
    """The varying parameters and a few headline results, for the readable table."""
    varying = [c for c in table.columns[:table.columns.get_loc("status")]
               if c not in ("point", "point_id") and table[c].astype(str).nunique() > 1]
    heads = ("step_time_s", "mfu", "memory_per_gpu_bytes", "fits", "bottleneck",
             "goodput_requests_per_s", "throughput_tokens_per_s", "ttft_s.p50", "tpot_s.p50")
    return ["point"] + varying + ["status"] + [c for c in heads if c in table.columns]
