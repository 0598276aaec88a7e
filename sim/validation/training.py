"""Timing validation of training: real steps of the reference model vs ``estimate_train``.

A step is forward, cross-entropy loss, backward and an AdamW update, in fp32 on one worker
with the calibrated thread count; all cases are measured together under the protocol of
``sim.validation.protocol`` (two warm-up steps each, ``repeats`` round-robin rounds, each
step paired with the reference GEMM, lower-quantile estimator on the calibration's scale). The prediction is ``sim.costs.analytic.estimate_train`` for the same
model and a single-rank plan (fp32 weights and gradients, two fp32 Adam moments, no master
copy, eager attention: ``flash_attention=False``) on the calibrated profile. MoE configs are
dropless: the reference computes only routed tokens, and with a capacity factor the
simulator's hardware FLOPs include padding that the reference does not execute.

The data-parallel case runs the same step in 2 gloo processes with a bucketed gradient
all-reduce and compares with ``estimate_train`` at dp=2 (communication included,
``overlap="sum"``: the reference reduces after backward, without overlap) on the
both-workers-busy profile (``profile.busy_calibration``: two processes share the machine's two
cores, and that contention is part of the measured machine). A round of the step is
``max over ranks of compute + min over ranks of all-reduce time``: compute is each rank's own
CPU time outside the all-reduce (both start together after a barrier, so the slower one
decides when the all-reduce can start); the all-reduce is wall time (blocked time is real
time), and the rank that arrived last blocks only for the communication itself, while the
other's extra wait is its peer's compute, or the peer being descheduled by other users of
the machine, which is not the machine's communication cost. The two components are
estimated apart (lower quantile of each over the rounds; the minimum of a sum of
independent non-negative disturbances is estimated by the sum of the minima, Chen & Revels
2016): compute paired with a reference GEMM that rank 0 times while rank 1 waits and put on
the calibration's CPU-time scale, the all-reduce on the wall clock as the gloo calibration
measured it. The all-reduce needs more rounds to meet one undisturbed transfer on a loaded
machine: 3 x ``repeats``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sim.model import get_model
from sim.model.config import ModelConfig, MoEConfig
from sim.plan import OptimizerConfig, ParallelPlan
from sim.validation.cases import Case

DP_ROUNDS_PER_REPEAT = 3  # the all-reduce needs more rounds to see one undisturbed transfer
FP32_ADAM = OptimizerConfig(weight_bytes=4, grad_bytes=4, master_bytes=0, moment_bytes=8)


@dataclass(frozen=True)
class TrainCase:
    name: str
    model: ModelConfig
    batch: int
    seq: int
    recompute: str = "none"


def _dense(base: str, hidden: int, layers: int, ffn: int, heads: int = 4, kv: int | None = None,
           vocab: int = 1024) -> ModelConfig:
    cfg = get_model(base)
    kv = kv or (heads if cfg.n_kv_heads == cfg.n_heads else heads // 2)
    return dataclasses.replace(cfg, name=f"{base}-h{hidden}-l{layers}", vocab_size=vocab,
                               hidden=hidden, n_layers=layers, n_heads=heads, n_kv_heads=kv,
                               head_dim=hidden // heads, ffn_hidden=ffn)


def _moe(hidden: int, layers: int, experts: int, top_k: int, shared: int = 0) -> ModelConfig:
    cfg = _dense("tiny-llama", hidden, layers, 2 * hidden)
    moe = MoEConfig(n_experts=experts, top_k=top_k, expert_ffn_hidden=hidden,
                    n_shared_experts=shared)
    return dataclasses.replace(cfg, name=f"moe-h{hidden}-e{experts}k{top_k}s{shared}", moe=moe)


def training_grid(quick: bool = False) -> list[TrainCase]:
    """>= 12 configs varying layers, hidden, sequence, batch, experts, top-k, recompute."""
    if quick:
        return [TrainCase("llama h64", _dense("tiny-llama", 64, 2, 176), 2, 32),
                TrainCase("gpt h64", _dense("tiny-gpt", 64, 2, 256), 2, 32),
                TrainCase("moe e4k2", _moe(64, 2, 4, 2), 2, 32),
                TrainCase("llama h64 full-recompute", _dense("tiny-llama", 64, 2, 176), 2, 32,
                          "full")]
    llama = _dense("tiny-llama", 256, 2, 688)
    return [
        TrainCase("llama h128 l2", _dense("tiny-llama", 128, 2, 344), 4, 128),
        TrainCase("llama h256 l2", llama, 4, 128),
        TrainCase("llama h256 l4", _dense("tiny-llama", 256, 4, 688), 4, 128),
        TrainCase("llama h256 s256 b2", llama, 2, 256),
        TrainCase("llama h256 s64 b8", llama, 8, 64),
        TrainCase("llama h384 l2", _dense("tiny-llama", 384, 2, 1024, heads=6), 2, 128),
        TrainCase("llama h256 full-recompute", llama, 4, 128, "full"),
        TrainCase("gpt h256 l2", _dense("tiny-gpt", 256, 2, 1024), 4, 128),
        TrainCase("gpt h256 l4 full-recompute", _dense("tiny-gpt", 256, 4, 1024), 2, 128, "full"),
        TrainCase("moe h256 e4 k2", _moe(256, 2, 4, 2), 4, 128),
        TrainCase("moe h256 e8 k2", _moe(256, 2, 8, 2), 4, 128),
        TrainCase("moe h256 e8 k1 +shared", _moe(256, 2, 8, 1, shared=1), 4, 128),
        TrainCase("moe h256 e4 k2 full-recompute", _moe(256, 2, 4, 2), 4, 128, "full"),
    ]


def train_plan(case: TrainCase, dp: int = 1, overlap: str = "max") -> ParallelPlan:
    return ParallelPlan(dp=dp, micro_batch=case.batch, global_batch=case.batch * dp,
                        seq_len=case.seq, recompute=case.recompute, dtype="fp32",
                        flash_attention=False, optimizer=FP32_ADAM, overlap=overlap)


def make_step(case: TrainCase, device: str = "cpu", seed: int = 0, reduce=None):
    """A closure running one real training step (forward, loss, backward, ``reduce(model)``
    when given (the DP gradient all-reduce), AdamW)."""
    from sim.validation.measure import tokens
    from sim.validation.reference import build_model

    model = build_model(case.model, device=device)
    model.recompute = case.recompute
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tok = tokens(case.model, case.batch, case.seq + 1, seed=seed, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tok[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), tok[:, 1:].flatten()).backward()
        if reduce is not None:
            reduce(model)
        opt.step()

    return step, model


def measure_train(cases: list[TrainCase], device: str, repeats: int) -> dict:
    """Estimated step seconds of every case, interleaved (``sim.validation.protocol``)."""
    from sim.validation.protocol import interleaved_seconds

    steps = {case.name: make_step(case, device)[0] for case in cases}
    return interleaved_seconds(steps, rounds=repeats, warmup=2, device=device)


def predict_train(case: TrainCase, system, dp: int = 1, overlap: str = "max") -> float:
    from hardware import Cluster
    from sim.costs.analytic import estimate_train

    cluster = Cluster.for_gpus(system, dp)
    return estimate_train(case.model, train_plan(case, dp, overlap), cluster).step_time_s


def training_cases(system, device: str = "cpu", quick: bool = False, repeats: int = 5
                   ) -> list[Case]:
    grid = training_grid(quick)
    measured = measure_train(grid, device, repeats)
    return [Case(case.name, "train_step_s", predict_train(case, system),
                 measured[case.name].seconds, kind="timing", spread=measured[case.name].spread)
            for case in grid]


def _dp_worker(rank: int, world: int, case: TrainCase, repeats: int
               ) -> tuple[list[float], list[float], list[float]]:
    """One DP rank: (compute CPU seconds, all-reduce wall seconds, reference seconds) per
    round (module docstring)."""
    import time

    import torch.distributed as dist

    from sim.costs.analytic_comm import bucket_bytes
    from sim.validation.protocol import reference_kernel

    per_bucket, blocked = int(bucket_bytes(world, 4)) // 4, [0.0, 0.0]

    def reduce(model):
        w0, c0 = time.perf_counter(), time.process_time()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        for chunk in flat.split(per_bucket):
            dist.all_reduce(chunk)
        blocked[0] += time.perf_counter() - w0
        blocked[1] += time.process_time() - c0

    step, _ = make_step(case, seed=rank, reduce=reduce)
    ref, compute, comm, refs = reference_kernel("cpu"), [], [], []
    for _ in range(repeats + 2):  # two warm-up rounds
        dist.barrier()
        if rank == 0:
            t0 = time.process_time()
            ref()
            refs.append(time.process_time() - t0)
        dist.barrier()
        blocked[:] = [0.0, 0.0]
        c0 = time.process_time()
        step()
        compute.append(time.process_time() - c0 - blocked[1])
        comm.append(blocked[0])
    return compute[2:], comm[2:], refs[2:]


def measure_dp(case: TrainCase, repeats: int, threads: int) -> tuple[float, float]:
    """(estimated step seconds, spread) of the 2-rank gloo step (module docstring)."""
    from sim.validation.distributed import spawn
    from sim.validation.protocol import low, scale, spread

    ranks = spawn(_dp_worker, 2, case, DP_ROUNDS_PER_REPEAT * repeats, threads=threads)
    (c0, w0, refs), (c1, w1, _) = ranks
    compute = [max(a, b) for a, b in zip(c0, c1, strict=True)]
    comm = [min(x, y) for x, y in zip(w0, w1, strict=True)]
    ref_low = low(refs)
    total = [a + b for a, b in zip(compute, comm, strict=True)]
    return low(compute) * (scale() or ref_low) / ref_low + low(comm), spread(total)


def dp_cases(system, quick: bool = False, repeats: int = 5, threads: int = 1) -> list[Case]:
    """Data parallelism over gloo, 2 processes, vs estimate_train(dp=2, overlap="sum") on the
    both-workers-busy profile ``system`` (module docstring)."""
    grid = training_grid(quick)
    cases = [grid[0]] if quick else [grid[1], grid[9]]
    rows = []
    for case in cases:
        measured, spread = measure_dp(case, repeats, threads)
        rows.append(Case(f"{case.name} dp=2 (gloo)", "train_step_s",
                         predict_train(case, system, dp=2, overlap="sum"), measured,
                         kind="timing", spread=spread))
    return rows
