"""``clustersim validate``: how far are clustersim's predictions from real PyTorch runs here?

Calibrates this machine (or takes ``--system FILE``), then runs exact checks (parameter
counts, FLOPs, KV-cache bytes, saved activations, the collectives of DP/TP steps on gloo) and
timing cases (training steps, DP over gloo, prefill/decode, continuous batching, speculative
decoding), and prints Predicted | Measured | error per case with the median and max absolute
timing error, plus the published-runs table (Megatron-LM SC'21 Table 1, Llama 3 Table 4).
Writes DIR/STEM.json, DIR/STEM.md and a predicted-vs-measured scatter chart DIR/STEM.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim.cli.common import add_json_flag, dumps, emit_json
from sim.cli.flags import pos_int

STAGES = ("exact", "collectives", "training", "data-parallel", "inference", "serving",
          "speculative")  # sim.validation.runner.STAGES (kept here: no torch import at --help)

EPILOG = """\
examples:
  clustersim validate --quick                 # about a minute on a laptop CPU
  clustersim validate --out-dir validation    # the full table, committed as data
  clustersim validate --device cuda --json
  clustersim validate --system calibrated-cpu.toml   # reuse a profile, skip calibration
  clustersim validate --previous run1.json --previous run2.json  # third run lists all three

Exit status 0 even when timing targets are missed (they are reported); 1 when an exact check
fails (a real disagreement between the simulator and PyTorch).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate", help="predicted vs measured on real PyTorch runs (exact + timing)",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="small grid (CI)")
    p.add_argument("--system", metavar="FILE", help="a calibrated profile (skips calibration)")
    p.add_argument("--threads", type=pos_int(1024), default=1, help="intra-op threads (default 1)")
    p.add_argument("--repeats", type=pos_int(1000), default=None, help="timed repeats per case")
    p.add_argument("--out-dir", default="validation", help="where JSON/markdown/chart go")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of: {', '.join(STAGES)} (default: all)")
    p.add_argument("--kernels", action="store_true",
                   help="instead: the kernel/collective table against the published "
                        "measurements in --data (writes OUT_DIR/kernels.md and kernels.json)")
    p.add_argument("--data", default="../shared/data", metavar="DIR",
                   help="measured data folder for --kernels (default ../shared/data)")
    p.add_argument("--previous", metavar="FILE", action="append", default=[],
                   help="JSON of an earlier run (repeatable): the table lists each earlier "
                        "run's errors and every row's run-to-run spread")
    p.add_argument("--published", action="store_true",
                   help="predicted vs published measurements (SC'21, Llama 3, vTrain, DistServe/"
                        "vLLM), each under its software stack; writes validation/published.json "
                        "and docs/published-validation.md")
    add_json_flag(p)
    p.set_defaults(func=run)


def _slim(path: str) -> dict:
    """The parts of an earlier run's JSON the multi-run table needs."""
    from sim.errors import ConfigError

    try:
        doc = json.loads(Path(path).read_text())
        keep = ("name", "metric", "kind", "measured", "rel_error", "spread")
        return {"stem": doc["stem"], "machine": {k: doc["machine"][k] for k in (
                    "loadavg_start", "loadavg_end")},
                "timing_median_abs_rel_error": doc["timing_median_abs_rel_error"],
                "timing_max_abs_rel_error": doc["timing_max_abs_rel_error"],
                "cases": [{k: c.get(k) for k in keep} for c in doc["cases"]]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ConfigError(f"--previous {path!r}: not a readable clustersim validate JSON "
                          f"({why}); pass a DIR/STEM.json an earlier run wrote",
                          flag="--previous") from None


def _progress(enabled: bool):
    if not enabled:
        return None
    return lambda stage: print(f"[validate] {stage} ...", file=sys.stderr, flush=True)


def run_kernels(args) -> int:
    from sim.calibration.table import build, markdown
    from sim.errors import ConfigError
    from sim.fileio import atomic_write_text

    data = Path(args.data)
    if not (data / "kernels" / "kernels.csv").is_file():
        raise ConfigError(f"--data {args.data}: no kernels/kernels.csv there; point it at the "
                          "measured data folder (../shared/data from the repository)")
    doc = build(data)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "kernels.json", dumps(doc) + "\n")
    atomic_write_text(out / "kernels.md", markdown(doc))
    if args.json:
        return emit_json(doc)
    sys.stdout.write(markdown(doc))
    return 0


def run_published(args) -> int:
    from sim.published_report import write
    from sim.published_sets import run_published as compute

    doc = compute()
    write(doc, Path(args.out_dir) / "published.json", Path("docs/published-validation.md"))
    if args.json:
        return emit_json(json.loads(dumps(doc)))
    for key, st in doc["sets"].items():
        print(f"{key:10s} n={st['count']:5d} MAPE {st['mape']:6.1%}  median {st['median_signed_error']:+6.1%}"
              f"  Spearman {st['spearman']:.3f}")
    return 0


def run(args) -> int:
    if args.kernels:
        return run_kernels(args)
    if args.published:
        return run_published(args)
    from sim.cli.calibrate import check_device
    from sim.fileio import check_output
    from sim.validation.report import markdown_report, scatter_chart, text_report
    from sim.validation.runner import run_validation

    check_output(args.out_dir, "--out-dir", directory=True, inputs=(args.system,))
    check_device(args.device)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        from sim.errors import ConfigError

        raise ConfigError(f"--stages {args.stages!r}: unknown {unknown or 'empty'}; "
                          f"choose from {', '.join(STAGES)}")
    previous = [_slim(p) for p in args.previous]
    show = not args.json and sys.stderr.isatty()
    result = run_validation(args.device, args.quick, args.system, args.threads, args.out_dir,
                            args.repeats, _progress(show), stages)
    result["previous_runs"] = previous
    out = Path(args.out_dir)
    result["chart"] = scatter_chart(result, out / f"{result['stem']}.png")
    from sim.fileio import atomic_write_text

    atomic_write_text(out / f"{result['stem']}.json", dumps(result) + "\n")
    atomic_write_text(out / f"{result['stem']}.md", markdown_report(result))
    if args.json:
        emit_json(json.loads(dumps(result)))
    else:
        sys.stdout.write(text_report(result))
    return 1 if result["exact_mismatches"] else 0
