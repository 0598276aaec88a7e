"""The calibration microbenchmarks, as named zero-argument cases for ``sim.validation.protocol``.

Every builder returns ``{name: callable}``; ``calibrate`` runs all of them in ONE interleaved
batch (round-robin, paired with the reference GEMM, low-quantile estimator), so every knob of
the profile is measured the same way and at the same moments as every other.

- ``mm MxNxK``: hot fp32 GEMMs over the shape grid (square, rectangular, few-row);
- ``copy/add N MiB``: elementwise streams over in-cache working sets;
- ``stream rows=R``: an R-row GEMM over cold 2048^2 weights (decode's batched weight stream);
- ``gemv NxK``: a one-row GEMM over cold N x K weights; several shapes separate the per-output
  -row cost from the byte stream (BLAS GEMV computes one dot product per output row;
  Dongarra et al. 1988, ACM TOMS 14(1));
- ``block train`` / ``block infer``: a full-width reference block (hidden 256), forward +
  backward on 8 tokens, and a no-grad forward on one token through 16 such blocks (cold
  weights, as in decode): the per-op overhead is what the model's roofline leaves
  unexplained there, divided by the ops the lowering prices;
- ``attention BxHxSxD``: eager attention (two bmms, then scale, mask and softmax passes over
  the scores);
- ``grouped E``: the reference MoE's grouped linear (``grouped.py``) forward + backward over E
  tiny expert slices: the slope in E is the cost of one BLAS call per expert slice.

Cold weights share one pool larger than the 32 MiB last-level cache of the machine.
"""

from __future__ import annotations

import dataclasses

import torch

POOL_BYTES = 128 << 20
STREAM_ROWS = (2, 4, 16)
GEMV_SHAPES = ((1024, 1024), (2048, 2048), (4096, 1024), (1024, 4096), (4096, 512))
QUICK_GEMV = ((1024, 1024), (2048, 2048), (4096, 512))
# head dims 32-128 and 64-512 tokens, so the bmm FLOPs (~ s^2 d) and the score traffic (~ s^2)
# separate in the fit; the first four are the quick set
ATTENTION_SHAPES = ((2, 4, 128, 32), (4, 8, 256, 64), (8, 2, 64, 64), (2, 2, 192, 128),
                    (2, 8, 256, 32), (1, 4, 512, 64))
GROUPED = (1, 16)  # expert slices
GROUPED_WIDTH, GROUPED_ROWS = 32, 2  # tiny slices: the call cost, not the math, dominates
BLOCK_TOKENS = {"train": 8, "infer": 1}
COLD_BLOCKS = 16  # x ~3.3 MiB of weights each at hidden 256: > the 32 MiB last-level cache


def matmul_cases(grid, device: str) -> dict:
    out = {}
    for m, n, k in grid:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        out[f"mm {m}x{n}x{k}"] = lambda a=a, b=b: torch.mm(a, b)
    return out


def elementwise_cases(mib, device: str) -> dict:
    out = {}
    for size in mib:
        n = (size << 20) // 4
        x, y, z = (torch.randn(n, device=device) for _ in range(3))
        out[f"copy {size} MiB"] = lambda x=x, z=z: z.copy_(x)
        out[f"add {size} MiB"] = lambda x=x, y=y, z=z: torch.add(x, y, out=z)
    return out


def elementwise_bytes(name: str) -> float:
    """Bytes read + written by an ``elementwise_cases`` case."""
    kind, size, _ = name.split()
    return (2 if kind == "copy" else 3) * float(int(size) << 20)


def _pool_weights(pool: torch.Tensor, n: int, k: int) -> list[torch.Tensor]:
    return [pool[i * n * k:(i + 1) * n * k].view(n, k) for i in range(pool.numel() // (n * k))]


def _sweep(x, weights):
    def run():
        for w in weights:
            torch.nn.functional.linear(x, w)
    return run


def stream_cases(pool: torch.Tensor, rows, device: str, n: int = 2048) -> dict:
    ws = _pool_weights(pool, n, n)
    return {f"stream rows={r}": _sweep(torch.randn(r, n, device=device), ws) for r in rows}


def gemv_cases(pool: torch.Tensor, shapes, device: str) -> dict:
    return {f"gemv {n}x{k}": _sweep(torch.randn(1, k, device=device), _pool_weights(pool, n, k))
            for n, k in shapes}


def sweep_weights(n: int, k: int) -> int:
    """How many weights a ``stream``/``gemv`` sweep reads per call."""
    return (POOL_BYTES // 4) // (n * k)


def attention_cases(device: str, quick: bool) -> dict:
    from sim.validation.layers import eager_attention

    out = {}
    for b, h, s, d in ATTENTION_SHAPES[:4] if quick else ATTENTION_SHAPES:
        q, k, v = (torch.randn(b, h, s, d, device=device) for _ in range(3))
        blocked = torch.zeros(s, s, dtype=torch.bool, device=device)
        out[f"attention {b}x{h}x{s}x{d}"] = (
            lambda q=q, k=k, v=v, blocked=blocked: eager_attention(q, k, v, blocked))
    return out


def attention_flops(name: str) -> float:
    b, h, s, d = (int(x) for x in name.split()[1].split("x"))
    return 4.0 * b * h * s * s * d  # QK^T and AV: 2*s*s*d each per head


def attention_score_bytes(name: str) -> float:
    """fp32 bytes of the score passes the CPU attention term prices for this eager attention
    (``sim.costs.timing.SCORE_PASSES`` passes over the b x h x s x s scores)."""
    from sim.costs.timing import SCORE_PASSES

    b, h, s, d = (int(x) for x in name.split()[1].split("x"))
    return 4.0 * SCORE_PASSES * b * h * s * s


def block_config():
    """The full-width block of the overhead measurement (hidden 256, Llama-style, GQA)."""
    from sim.model import get_model

    return dataclasses.replace(get_model("tiny-llama"), name="overhead-block-h256", hidden=256,
                               n_heads=4, n_kv_heads=2, head_dim=64, ffn_hidden=688)


def block_cases(device: str) -> dict:
    """Forward + backward of one block on 8 tokens (its weights stay in cache, as a small
    training step's do), and a no-grad forward of one token through ``COLD_BLOCKS`` blocks in
    turn (their weights exceed the last-level cache, as a decode step's layers do): the
    per-op figure is the latter over its blocks."""
    from sim.validation.layers import Context
    from sim.validation.reference import Block

    cfg = block_config()
    torch.manual_seed(0)
    blocks = [Block(cfg, 0).to(device) for _ in range(COLD_BLOCKS)]
    s_train, s_infer = BLOCK_TOKENS["train"], BLOCK_TOKENS["infer"]
    x = torch.randn(1, s_train, cfg.hidden, device=device, requires_grad=True)
    ctx = Context(cfg, 0, s_train, device, torch.float32)
    x1 = torch.randn(1, s_infer, cfg.hidden, device=device)
    ctx1 = Context(cfg, 0, s_infer, device, torch.float32)

    def infer():
        with torch.no_grad():
            for block in blocks:
                block(x1, ctx1)

    return {"block train": lambda: blocks[0](x, ctx).sum().backward(), "block infer": infer}


def grouped_cases(device: str) -> dict:
    from sim.validation.grouped import grouped_linear

    out = {}
    for e in GROUPED:
        w = torch.randn(e, GROUPED_WIDTH, GROUPED_WIDTH, device=device, requires_grad=True)
        x = torch.randn(e * GROUPED_ROWS, GROUPED_WIDTH, device=device, requires_grad=True)
        counts = [GROUPED_ROWS] * e
        out[f"grouped {e}"] = (
            lambda x=x, w=w, counts=counts: grouped_linear(x, w, None, counts).sum().backward())
    return out
