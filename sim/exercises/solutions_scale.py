"""Worked solutions of lesson 3 (training at scale: memory, communication, pipelines, decode).

Mixed-precision Adam: 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master + two moments) bytes
per parameter; ZeRO-1/2/3 shard the 12, then the grads, then the weights over dp (Rajbhandari
et al. 2020, Sec. 3.1 and 5). Ring all-reduce sends 2(n-1)/n of the buffer per GPU; a
hierarchical one does that over NVLink inside a node and all-reduces a 1/g shard across nodes
(NCCL conventions; Sergeev & Del Balso 2018). Pipeline step (m + p - 1) t_mb for GPipe/1F1B
(Narayanan et al. 2021, Sec. 2.2); interleaving divides the bubble by v; ZB-H1 (Qi et al.
2024, Sec. 3.1). Decode: bytes read over the achieved HBM bandwidth (roofline; Williams et
al. 2009). Tensor parallelism: two all-reduces of the layer's activations per layer forward,
two backward (Shoeybi et al. 2019, Sec. 3).
"""

from __future__ import annotations

from sim.exercises.solution import GIB, Solution, fits, g, gib, ms, pct, solver


def _state(p: float, dp: int, zero: int) -> tuple[float, float, float]:
    weights = 2 * p / (dp if zero >= 3 else 1)
    grads = 2 * p / (dp if zero >= 2 else 1)
    opt = 12 * p / (dp if zero >= 1 else 1)
    return weights, grads, opt


@solver("model_state_memory", ("params", "dp", "zero", "hbm_gib"))
def state_memory(v) -> Solution:
    p, dp, z = v["params"], v["dp"], v["zero"]
    w, gr, opt = _state(p, dp, z)
    total = w + gr + opt
    steps = (f"bf16 weights 2 B x {g(p)}" + (f" / dp {dp}" if z >= 3 else "") + f" = {gib(w)}",
             f"bf16 gradients 2 B x {g(p)}" + (f" / {dp}" if z >= 2 else "") + f" = {gib(gr)}",
             f"fp32 master + Adam moments 12 B x {g(p)}" + (f" / {dp}" if z >= 1 else "")
             + f" = {gib(opt)}",
             f"Total = {gib(total)} per GPU")
    mistakes = {"forgot-master-weights": total - 4 * p / (dp if z >= 1 else 1),
                "forgot-sharding": 16.0 * p, "gb-vs-gib": total * GIB / 1e9}
    if z == 0:
        mistakes["dp-replicates"] = 16 * p / dp
    if z == 2:
        mistakes |= {"zero3-for-zero2": sum(_state(p, dp, 3)),
                     "zero1-for-zero2": sum(_state(p, dp, 1))}
    if z == 3:
        mistakes["zero2-for-zero3"] = sum(_state(p, dp, 2))
    return Solution(total, steps, mistakes, f"Model state alone {fits(total, v['hbm_gib'])}, "
                    "before any activation.")


@solver("tp_pp_memory", ("params", "n_layers", "layer_params", "lm_head_params", "tp", "pp",
                         "hbm_gib"))
def tp_pp_memory(v) -> Solution:
    per_stage = v["n_layers"] / v["pp"] * v["layer_params"]
    heaviest = (per_stage + v["lm_head_params"]) / v["tp"]
    total = 16 * heaviest
    steps = (f"Each stage holds {v['n_layers']} / {v['pp']} layers x {g(v['layer_params'])} = "
             f"{g(per_stage)} parameters",
             f"The last stage also holds the LM head ({g(v['lm_head_params'])}; the first the "
             "embedding table, as large)",
             f"TP{v['tp']} splits them: ({g(per_stage)} + {g(v['lm_head_params'])}) / {v['tp']} "
             f"= {g(heaviest)} parameters per GPU",
             f"x 16 bytes (mixed-precision Adam) = {gib(total)}")
    return Solution(total, steps, {"forgot-sharding": 16.0 * v["params"],
                                   "gb-vs-gib": total * GIB / 1e9},
                    f"Model state {fits(total, v['hbm_gib'])}; TP x PP = {v['tp'] * v['pp']} GPUs "
                    "share one copy of the model.")


@solver("cp_memory", ("params", "tp", "cp", "seq_len", "n_layers", "act_bytes_token_layer",
                      "other_gib", "hbm_gib"))
def cp_memory(v) -> Solution:
    state = 16 * v["params"] / v["tp"]
    tokens = v["seq_len"] / v["cp"]
    act = v["n_layers"] * tokens * v["act_bytes_token_layer"]
    other = v["other_gib"] * GIB
    total = state + act + other
    steps = (f"Model state: 16 B x {g(v['params'])} / TP{v['tp']} = {gib(state)} (CP does not "
             "shard it)",
             f"Activations: {v['seq_len']} / CP{v['cp']} = {g(tokens)} tokens per GPU x "
             f"{v['n_layers']} layers x {v['act_bytes_token_layer']:.0f} B = {gib(act)}",
             f"+ buffers {v['other_gib']:.2f} GiB = {gib(total)}")
    no_cp_act = act * v["cp"]
    return Solution(total, steps, {"dp-replicates": state / v["cp"] + act + other,
                                   "cp-not-splitting": state + no_cp_act + other},
                    f"{fits(total, v['hbm_gib'])}; without CP the activations alone would be "
                    f"{gib(no_cp_act)}.")


@solver("allreduce_time", ("gpus", "gbytes", "bidir_gbps"), residual=("nccl_ms", 1e-3))
def allreduce_nvlink(v) -> Solution:
    n, size = v["gpus"], v["gbytes"] * 1e9
    bw = v["bidir_gbps"] / 2 * 1e9
    sent = 2 * (n - 1) / n * size
    wire = sent / bw
    t = wire + v["nccl_ms"] / 1e3
    steps = (f"Ring all-reduce: each GPU sends 2(n-1)/n x {v['gbytes']} GB = {sent / 1e9:.3f} GB",
             f"Per direction: {v['bidir_gbps']:.0f} / 2 = {bw / 1e9:.0f} GB/s",
             f"Wire time = {sent / 1e9:.3f} GB / {bw / 1e9:.0f} GB/s = {ms(wire)}",
             f"+ NCCL's protocol and achieved-bandwidth overhead {v['nccl_ms']:.3f} ms = {ms(t)}")
    nccl = v["nccl_ms"] / 1e3
    return Solution(t, steps, {"bidirectional-bandwidth": wire / 2 + nccl,
                               "ring-factor-forgotten": size / bw + nccl},
                    f"{ms(t)} per {v['gbytes']} GB: inside a node, gradient sync is cheap next to "
                    "a step of seconds.", f"NCCL overhead over wire speed: {v['nccl_ms']:.3f} ms")


def _hierarchical(v, size: float) -> tuple[float, float, float]:
    n, nodes = v["gpus"], v["nodes"]
    per = n // nodes
    nvl, nic = v["bidir_gbps"] / 2 * 1e9, v["nic_gbit"] / 8 * 1e9
    intra = 2 * (per - 1) / per * size / nvl
    inter = 2 * (nodes - 1) / nodes * (size / per) / nic
    return intra, inter, nic


@solver("allreduce_time_cross_node", ("gpus", "nodes", "gbytes", "bidir_gbps", "nic_gbit"))
def allreduce_cross(v) -> Solution:
    size, n = v["gbytes"] * 1e9, v["gpus"]
    per = n // v["nodes"]
    intra, inter, nic = _hierarchical(v, size)
    t = intra + inter
    steps = (f"NVLink part (reduce-scatter + all-gather in each node of {per}): 2 x {per - 1}/{per} "
             f"x {v['gbytes']} GB / {v['bidir_gbps'] / 2:.0f} GB/s = {ms(intra)}",
             f"Across {v['nodes']} nodes each GPU all-reduces a 1/{per} shard on its own NIC "
             f"({v['nic_gbit']:.0f} Gb/s = {nic / 1e9:.0f} GB/s): 2 x {v['nodes'] - 1}/"
             f"{v['nodes']} x {size / per / 1e9:.3f} GB / {nic / 1e9:.0f} GB/s = {ms(inter)}",
             f"Total = {ms(t)}")
    flat = 2 * (n - 1) / n * size
    return Solution(t, steps, {"nvlink-not-nic": flat / (v["bidir_gbps"] / 2 * 1e9),
                               "flat-ring-over-nic": flat / nic,
                               "bidirectional-bandwidth": t / 2},
                    f"The NICs carry only 1/{per} of the bytes yet take {100 * inter / t:.0f}% of "
                    "the time: crossing nodes is what makes data parallelism expensive.")


@solver("pipeline_step_time", ("t_mb_ms", "microbatches", "pp"), residual=("other_ms", 1e-3))
def pipeline_step(v) -> Solution:
    m, p, t = v["microbatches"], v["pp"], v["t_mb_ms"]
    useful, bubble = m * t, (p - 1) * t
    step = (useful + bubble + v["other_ms"]) / 1e3
    steps = (f"Useful work: m x t_mb = {m} x {t:.1f} = {useful:.0f} ms",
             f"Bubble (fill + drain): (p - 1) x t_mb = {p - 1} x {t:.1f} = {bubble:.0f} ms",
             f"+ exposed communication {v['other_ms']:.0f} ms = {1e3 * step:.0f} ms "
             f"= {step:.3f} s")
    return Solution(step, steps, {"ignored-bubble": (useful + v["other_ms"]) / 1e3},
                    f"The bubble is {100 * bubble / (useful + bubble):.0f}% of the pipeline's "
                    "time: more micro-batches (or interleaving) shrink it.",
                    f"exposed communication (TP all-reduces and pipeline sends the compute does "
                    f"not hide): {v['other_ms']:.0f} ms")


@solver("schedule_bubble", ("schedule", "pp", "microbatches", "virtual_stages"))
def schedule_bubble(v) -> Solution:
    p, m, s = v["pp"], v["microbatches"], v["schedule"]
    if s in ("gpipe", "1f1b"):
        ratio, how = (p - 1) / m, f"(p-1)/m = {p - 1}/{m}"
    elif s == "interleaved":
        ratio, how = (p - 1) / (v["virtual_stages"] * m), f"(p-1)/(v m) = {p - 1}/" \
                                                          f"({v['virtual_stages']} x {m})"
    else:  # zb-h1: each idle slot of the drain is one of three passes, two filled by W passes
        ratio, how = (p - 1) / (3 * m), f"(p-1)/(3m) = {p - 1}/(3 x {m}) (ZB-H1: W passes " \
                                        "fill 2 of 3 units of each drain slot)"
    frac = ratio / (1 + ratio)
    steps = (f"bubble / useful = {how} = {ratio:.4f}",
             f"bubble / step = r / (1 + r) = {pct(frac)}")
    return Solution(frac, steps, {"ignored-bubble": 0.0, "bubble-over-useful": ratio},
                    f"{pct(frac)} of every GPU-second idles with {s}.")


@solver("dp_comm_share", ("params", "gpus", "nodes", "bidir_gbps", "nic_gbit", "step_s"))
def comm_share(v) -> Solution:
    size = 2.0 * v["params"]  # bf16 gradients
    intra, inter, _ = _hierarchical(v, size)
    comm = intra + inter
    share = comm / v["step_s"]
    steps = (f"Gradients: 2 B x {g(v['params'])} = {size / 1e9:.2f} GB per GPU",
             f"Hierarchical all-reduce: NVLink {ms(intra)} + NICs {ms(inter)} = {ms(comm)}",
             f"Share = {ms(comm)} / {v['step_s']:.3f} s = {pct(share)}")
    return Solution(share, steps, {"comm-share-small": comm / v["step_s"] / 4},
                    f"{pct(share)} of the step at {v['gpus']} GPUs; halve the compute per GPU "
                    "(double the GPUs at a fixed batch) and the share roughly doubles.")


def _decode(v, batch: int) -> tuple[float, float, float]:
    weights = 2 * v["params"] / v["tp"]
    kv = 2 * v["n_kv_heads"] * v["head_dim"] * 2 * v["n_layers"] * v["seq_len"] * batch / v["tp"]
    return weights, kv, (weights + kv) / (v["hbm_gbps"] * 1e9)


_DECODE = ("params", "tp", "n_layers", "n_kv_heads", "head_dim", "seq_len", "hbm_gbps")


@solver("decode_step_time", (*_DECODE, "batch", "overhead_ms"))
def decode_step(v) -> Solution:
    weights, kv, t_mem = _decode(v, v["batch"])
    t = t_mem + v["overhead_ms"] / 1e3
    steps = (f"Weights per GPU: 2 B x {g(v['params'])} / TP{v['tp']} = {gib(weights)}",
             f"KV read per GPU: 2 x {v['n_kv_heads']} x {v['head_dim']} x 2 B x {v['n_layers']} "
             f"layers x {v['seq_len']} x {v['batch']} sequences / {v['tp']} = {gib(kv)}",
             f"HBM time = {gib(weights + kv)} / {v['hbm_gbps']:.0f} GB/s = {ms(t_mem)}",
             f"+ {v['overhead_ms']:.2f} ms the simulator adds = {ms(t)}")
    w_only = weights / (v["hbm_gbps"] * 1e9) + v["overhead_ms"] / 1e3
    return Solution(t, steps, {"ignored-kv-reads": w_only},
                    f"The KV cache is {100 * kv / (kv + weights):.0f}% of the bytes: at long "
                    "context and large batch, KV reads, not FLOPs, set the decode speed.",
                    f"kernel launches, compute-bound small ops and TP all-reduces: "
                    f"{v['overhead_ms']:.2f} ms")


@solver("decode_tokens_per_s", (*_DECODE, "batch", "tflops", "overhead_ms"))
def decode_throughput(v) -> Solution:
    weights, kv, t_mem = _decode(v, v["batch"])
    t = t_mem + v["overhead_ms"] / 1e3
    rate = v["batch"] / t
    steps = (f"Bytes per token step per GPU: weights {gib(weights)} + KV {gib(kv)}",
             f"HBM time = {gib(weights + kv)} / {v['hbm_gbps']:.0f} GB/s = {ms(t_mem)}; + "
             f"{v['overhead_ms']:.2f} ms the simulator adds = {ms(t)}",
             f"Tokens/s = {v['batch']} / {ms(t)} = {rate:.1f}")
    by_flops = v["tflops"] * 1e12 * v["tp"] / (2 * v["params"])
    return Solution(rate, steps, {"decode-as-compute": by_flops},
                    f"{rate:.0f} tokens/s: the GPUs sit at a few % of their FLOP peak; batching "
                    "more users is what raises throughput.",
                    f"kernel launches, small ops and TP all-reduces: {v['overhead_ms']:.2f} ms")


@solver("tp_comm_time", ("hidden", "seq_len", "micro_batch", "n_layers", "tp", "bidir_gbps",
                         "compute_ms"), residual=("nccl_ms", 1e-3))
def tp_comm(v) -> Solution:
    msg = v["seq_len"] * v["micro_batch"] * v["hidden"] * 2  # bf16 activations
    per = 2 * (v["tp"] - 1) / v["tp"] * msg / (v["bidir_gbps"] / 2 * 1e9)
    n = 4 * v["n_layers"]
    wire = n * per
    t = wire + v["nccl_ms"] / 1e3
    steps = (f"Each all-reduce moves one activation tensor: {v['seq_len']} x {v['micro_batch']} x "
             f"{v['hidden']} x 2 B = {msg / 2**20:.1f} MiB",
             f"Ring on NVLink: 2 x {v['tp'] - 1}/{v['tp']} x {msg / 2**20:.1f} MiB / "
             f"{v['bidir_gbps'] / 2:.0f} GB/s = {ms(per)}",
             f"2 forward + 2 backward per layer x {v['n_layers']} layers = {n} all-reduces: "
             f"{ms(wire)} at wire speed",
             f"+ NCCL's protocol overheads {v['nccl_ms']:.2f} ms = {ms(t)}")
    nccl = v["nccl_ms"] / 1e3
    return Solution(t, steps, {"tp-forward-only": wire / 2 + nccl / 2,
                               "bidirectional-bandwidth": wire / 2 + nccl},
                    f"{100 * t / (t + v['compute_ms'] / 1e3):.0f}% of the micro-batch's "
                    f"time if not overlapped ({v['compute_ms']:.0f} ms of compute): TP stays "
                    "inside the NVLink domain for this reason.",
                    f"NCCL overhead over wire speed: {v['nccl_ms']:.2f} ms")


@solver("zero3_scaling_kept", ("base_gpus", "gpus", "base_step_s", "compute_s", "comm_s"),
        residual=("sim_adds_pct", 1e-2))
def zero3_kept(v) -> Solution:
    b, n = v["base_gpus"], v["gpus"]
    step = max(v["compute_s"], v["comm_s"])  # perfect overlap: the longer of the two
    kept = b * v["base_step_s"] / (n * step)  # same work F: TFLOP/s per GPU = F / (N T)
    x = kept + v["sim_adds_pct"] / 100
    steps = ("Same global batch: TFLOP/s per GPU is proportional to 1 / (GPUs x step time)",
             f"On {n} GPUs a step needs {v['compute_s']:.2f} s of compute and {v['comm_s']:.2f} s "
             f"of ZeRO-3 gathers and reduce-scatters; overlapped perfectly, the step takes "
             f"max = {step:.2f} s",
             f"Kept = ({b} x {v['base_step_s']:.2f} s) / ({n} x {step:.2f} s) = {pct(kept)}",
             f"The stack's per-call latency and exposed reduce-scatters add "
             f"{v['sim_adds_pct']:+.1f} points: {pct(x)}")
    return Solution(x, steps, {"flat-scaling": 1.0},
                    f"{n / b:.0f}x the GPUs keep {pct(x)} of the per-GPU throughput: at a fixed "
                    "batch ZeRO-3's communication stops hiding behind the shrinking compute.",
                    f"what perfect overlap misses (per-call latency, exposed reduce-scatters): "
                    f"{v['sim_adds_pct']:+.1f} points")
