"""One-op queries behind ``clustersim op``: each returns the JSON document of its subcommand.

Kernel times are ``sim.costs.timing.kernel_time`` (the GPU kernel's duration, what a profiler
reports), with the simulator's per-kernel launch gap given apart (``launch_overhead_s``);
collectives are ``sim.costs.comm.collective_choice``; an iteration is
``sim.costs.inference.forward_time``. Bus bandwidth follows nccl-tests (NCCL performance.md):
``busbw = factor x size / time`` with factor 2(n-1)/n for all-reduce, (n-1)/n for all-gather,
reduce-scatter and all-to-all, 1 for send/recv.
"""

from __future__ import annotations

from hardware import get_accelerator, get_system
from sim.costs.inference import attention_op, forward_time
from sim.costs.nccl import ring_terms
from sim.costs.stack_effects import kernel_factor
from sim.costs.timing import kernel_time, op_time_parts
from sim.errors import ConfigError
from sim.ops import Op


def _op_doc(op: Op, acc, dtype: str, kernel: str | None = None) -> dict:
    k = 1.0 if kernel is None else kernel_factor(kernel, acc)
    t = k * kernel_time(op, acc, dtype, kernel)
    tc, tm = op_time_parts(op, acc, dtype, kernel)
    flops, nbytes = op.total_flops, op.total_bytes
    return {"time_s": t, "flops": flops, "bytes": nbytes,
            "achieved_tflops": flops / t / 1e12 if t > 0 else 0.0,
            "bound": "compute" if tc >= tm else "memory",
            "launch_overhead_s": acc.efficiency.kernel_overhead_s}


def matmul(accelerator: str, m: int, n: int, k: int, dtype: str = "bf16") -> dict:
    from sim.costs.kernels import gemm_op

    acc = get_accelerator(accelerator)
    doc = _op_doc(gemm_op(m, n, k, dtype), acc, dtype)
    return {"accelerator": acc.name, "m": m, "n": n, "k": k, "dtype": dtype, **doc}


def _find(ops: dict[str, Op], names: tuple[str, ...]) -> Op | None:
    return next((ops[n] for n in names if n in ops), None)


def layer(model_name: str, accelerator: str, tokens: int, tp: int = 1,
          dtype: str = "fp16") -> dict:
    """The ten ops of one layer (``attention``: one causal prefill of ``tokens``)."""
    from sim.costs.lowering import lower_layer
    from sim.model import get_model
    from sim.plan import ParallelPlan, Shape

    model, acc = get_model(model_name), get_accelerator(accelerator)
    if model.n_heads % tp:
        raise ConfigError(f"--tp {tp}: must divide the model's {model.n_heads} attention heads")
    plan = ParallelPlan(tp=tp, dp=1, global_batch=1, dtype=dtype)
    lowered = {op.name: op for op in lower_layer(model, 0, Shape(1, tokens, "prefill"), plan)
               if not op.is_comm}
    lowered["attention"] = attention_op(model, [(tokens, 0)], tp, dtype)
    ops = []
    for name, sources in LAYER_OPS.items():
        op = _find(lowered, sources)
        if op is None:  # e.g. no RoPE in a learned-position model
            ops.append({"name": name, "kind": "none", "time_s": 0.0, "flops": 0.0, "bytes": 0.0})
            continue
        d = _op_doc(op, acc, dtype)
        ops.append({"name": name, "kind": op.kind, "time_s": d["time_s"], "flops": d["flops"],
                    "bytes": d["bytes"], "bound": d["bound"]})
    return {"model": model.name, "accelerator": acc.name, "tokens": tokens, "tp": tp,
            "dtype": dtype, "ops": ops, "time_s": sum(o["time_s"] for o in ops),
            "launch_overhead_s": acc.efficiency.kernel_overhead_s}


LAYER_OPS = {"attn_norm": ("attn_norm",), "qkv": ("qkv",), "rope": ("rope",),
             "attention": ("attention",), "out_proj": ("attn_out",), "mlp_norm": ("mlp_norm",),
             "gate_up": ("mlp_up", "shared_up", "expert_up"),
             "act": ("mlp_act", "shared_act", "expert_act"),
             "down": ("mlp_down", "shared_down", "expert_down"),
             "residual": ("attn_residual",)}


def attention(model_name: str, accelerator: str, phase: str, batch: int, q_len: int | None,
              context: int, tp: int = 1, dtype: str = "fp16",
              attention_kernel: str | None = None) -> dict:
    """One fused attention call, priced by the accelerator's model of ``attention_kernel``
    (its default model, scaled by the kernel's speed ratio, where it has no own fit)."""
    from sim.model import get_model

    q = q_len if q_len is not None else (1 if phase == "decode" else None)
    if q is None:
        raise ConfigError("--q-len is required for --phase prefill (new tokens per sequence)")
    if phase == "decode" and q != 1:
        raise ConfigError(f"--q-len {q}: a decode step has one new token per sequence; use "
                          "--q-len 1 or --phase prefill")
    if phase == "prefill" and q < 2:
        raise ConfigError("--q-len 1 is a decode step; use --phase decode or --q-len >= 2")
    model, acc = get_model(model_name), get_accelerator(accelerator)
    if model.n_heads % tp:
        raise ConfigError(f"--tp {tp}: must divide the model's {model.n_heads} attention heads")
    op = attention_op(model, [(q, context)] * batch, tp, dtype)
    a = acc.efficiency.attention
    model_of = (a.select(attention_kernel).kernel if a is not None else None)
    return {"model": model.name, "accelerator": acc.name, "phase": phase, "batch": batch,
            "q_len": q, "context": context, "tp": tp,
            "attention_kernel": attention_kernel or model_of, "attention_model": model_of,
            **_op_doc(op, acc, dtype, attention_kernel)}


def _ranks(system, gpus: int, nodes: int) -> list[int]:
    g = system.gpus_per_node
    if gpus % nodes or gpus // nodes > g or gpus < 2 and nodes > 1:
        raise ConfigError(f"--gpus {gpus} --nodes {nodes}: the GPUs must split evenly over the "
                          f"nodes with at most {g} per node ({system.name}); e.g. --gpus "
                          f"{g * nodes} --nodes {nodes}")
    per = gpus // nodes
    return [node * g + i for node in range(nodes) for i in range(per)]


def collective(system_name: str, kind: str, nbytes: int, gpus: int, nodes: int = 1,
               algorithm: str = "auto") -> dict:
    from hardware import Cluster
    from sim.costs.comm import collective_choice

    system = get_system(system_name)
    if kind == "send_recv" and gpus != 2:
        raise ConfigError(f"--gpus {gpus}: send_recv is between 2 GPUs; use --gpus 2")
    ranks = _ranks(system, gpus, nodes)
    cluster = Cluster(system, nodes)
    t, alg = collective_choice(kind, nbytes, ranks, cluster, algorithm)
    factor = ring_terms(kind, gpus)[1]
    return {"system": system.name, "kind": kind, "bytes": nbytes, "gpus": gpus, "nodes": nodes,
            "time_s": t, "algorithm": alg,
            "bus_bandwidth_gbps": factor * nbytes / t / 1e9 if t > 0 else 0.0}


def iteration(model_name: str, system_name: str, tp: int, prefill_lens, decode_lens,
              dtype: str = "fp16") -> dict:
    from hardware import Cluster
    from sim.model import get_model

    if not prefill_lens and not decode_lens:
        raise ConfigError("give --prefill-lens and/or --decode-context-lens (at least one "
                          "sequence in the iteration)")
    if any(n < 1 for n in prefill_lens):
        raise ConfigError("--prefill-lens: every prefill length must be >= 1")
    model, system = get_model(model_name), get_system(system_name)
    if model.n_heads % tp:
        raise ConfigError(f"--tp {tp}: must divide the model's {model.n_heads} attention heads")
    cost = forward_time(model, Cluster.for_gpus(system, tp), tp=tp,
                        prefill_lens=tuple(prefill_lens), decode_kv_lens=tuple(decode_lens),
                        dtype=dtype)
    return {"model": model.name, "system": system.name, "tp": tp,
            "prefill_lens": list(prefill_lens), "decode_context_lens": list(decode_lens),
            **cost.to_dict()}
