"""``clustersim calibrate``: measure this machine and write a system profile in catalog TOML.

Microbenchmarks (fixed thread count, repeats, medians): matmul throughput over a grid of
shapes (fitted to the efficiency model's matmul_max / matmul_half_flops), memory bandwidth,
per-op overhead, eager-attention efficiency, and the all-reduce latency/bandwidth of
torch.distributed (gloo) between 2 local processes. The profile is usable by every command
like a catalog entry: ``--system FILE``. Needs PyTorch (the validation harness).

From measurements someone already took (no PyTorch needed; ``sim.calibration``):
``--from-profile FILE.csv --accelerator NAME`` fits the accelerator's kernel models (tiled
GEMM, memory-bound kernels, attention) to kernel times in the schema of
``../shared/data/kernels/kernels.csv`` and writes the accelerator; ``--from-nccl-tests FILE
--system NAME [--gpus N]`` fits the node fabric's NCCL model to nccl-tests output and writes the
system. The JSON reports the fitted parameters and the error on held-out rows
(leave-one-model-out for kernels, leave-one-size-decade-out for collectives).
"""

from __future__ import annotations

import argparse
import sys

from sim.cli.common import add_json_flag, emit_json, fmt_time, table
from sim.cli.flags import pos_int

MAX_THREADS = 1024  # intra-op threads; torch refuses 0 and more threads than cores only slow it

EPILOG = """\
examples:
  clustersim calibrate --out my-laptop.toml
  clustersim train --model tiny-llama --system my-laptop.toml --gpus 1 --tp 1 --pp 1 \\
      --global-batch 4 --seq 128
  clustersim calibrate --device cuda --threads 4 --json
  clustersim calibrate --from-profile kernels.csv --accelerator a100-sxm-80gb --out a100.toml
  clustersim op matmul --accelerator a100.toml --m 4096 --n 4096 --k 4096
  clustersim calibrate --from-nccl-tests AR_GPU8_1M_1024M_LUT.csv --system dgx-a100-80gb \
      --gpus 8 --out dgx.toml --json
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="microbenchmark this machine; write a --system profile (TOML)",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", metavar="FILE", help="profile path (default: calibrated-DEVICE.toml)")
    p.add_argument("--threads", type=pos_int(MAX_THREADS), default=1, help="intra-op threads (default 1)")
    p.add_argument("--quick", action="store_true", help="fewer shapes and sizes (seconds)")
    p.add_argument("--name", default=None, help="system name in the profile")
    p.add_argument("--from-profile", metavar="FILE.csv",
                   help="fit an accelerator's kernel models to measured kernel times")
    p.add_argument("--accelerator", metavar="NAME", help="accelerator to fit (--from-profile)")
    p.add_argument("--from-nccl-tests", metavar="FILE",
                   help="fit a system's NCCL model to nccl-tests output (file or directory)")
    p.add_argument("--system", metavar="NAME", help="system to fit (--from-nccl-tests)")
    p.add_argument("--gpus", type=pos_int(4096), default=None,
                   help="GPUs of the nccl-tests run (default: read from the file)")
    add_json_flag(p)
    p.set_defaults(func=run)


def check_device(device: str) -> None:
    """Typed errors for a missing torch or a missing GPU (exit status 2, one line)."""
    from sim.errors import ConfigError
    from sim.validation import torch_available

    if not torch_available():
        raise ConfigError("PyTorch is not installed; install the test extra "
                          "(pip install -e '.[test]') to calibrate or validate")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device cpu")


def run_from_data(args) -> int:
    from sim.calibration import cli_fit
    from sim.errors import ConfigError

    if args.from_profile and args.from_nccl_tests:
        raise ConfigError("--from-profile and --from-nccl-tests: give one (kernels or "
                          "collectives) per run")
    if args.from_profile:
        if not args.accelerator:
            raise ConfigError("--from-profile needs --accelerator NAME (catalog name or .toml)")
        doc = cli_fit.from_profile(args.from_profile, args.accelerator, args.out)
        rows = [(f"{g} held out", f"{s['median_abs_error']:.1%} median, "
                 f"{s['p90_abs_error']:.1%} p90 ({s['count']} rows)")
                for g, s in doc["heldout"].items()]
    else:
        if not args.system:
            raise ConfigError("--from-nccl-tests needs --system NAME (catalog name or .toml)")
        if args.gpus is not None and args.gpus < 2:
            raise ConfigError(f"--gpus {args.gpus}: a collective needs at least 2 GPUs")
        doc = cli_fit.from_nccl_tests(args.from_nccl_tests, args.system, args.gpus, args.out)
        rows = [(f"held out ({k})", f"{s['median_abs_error']:.1%} median ({s['count']} rows)")
                for k, s in doc["heldout"].items() if s]
    if args.json:
        return emit_json(doc)
    print(table([("profile", doc["profile"])] + rows))
    return 0


def run(args) -> int:
    from dataclasses import asdict

    if args.from_profile or args.from_nccl_tests:
        return run_from_data(args)

    from sim.fileio import check_output
    from sim.validation.calibrate import calibrate
    from sim.validation.profile import write_profile

    out = f"calibrated-{args.device}.toml" if args.out is None else args.out
    check_output(out, "--out")
    check_device(args.device)
    cal = calibrate(args.device, args.threads, args.quick)
    system = write_profile(cal, out, name=args.name or f"calibrated-{args.device}")
    doc = {"profile": out, "system": system.name, **asdict(cal),
           "matmul_half_flops": cal.matmul_half_flops}
    if args.json:
        return emit_json(doc)
    print(table([
        ("profile", out), ("matmul fp32 peak", f"{cal.peak_fp32 / 1e9:.1f} GFLOP/s"),
        ("matmul half-efficiency size", f"{cal.matmul_half_flops / 1e6:.2f} MFLOP"),
        ("bf16 matmul", f"{cal.peak_bf16 / 1e9:.1f} GFLOP/s"),
        ("memory bandwidth (copy)", f"{cal.memory_bandwidth / 1e9:.2f} GB/s"),
        ("streaming efficiency", f"{cal.memory_efficiency:.2f}"),
        ("per-op overhead", fmt_time(cal.kernel_overhead_s)),
        ("attention efficiency", f"{cal.attention_max:.2f}"),
        ("gloo all-reduce", f"{cal.link_bandwidth / 1e9:.2f} GB/s, alpha "
                            f"{fmt_time(cal.link_latency)}"),
    ]), file=sys.stdout)
    return 0
