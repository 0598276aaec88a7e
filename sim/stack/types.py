"""``Stack``: the software that runs a model, as data (issue 13).

A stack is the fourth input next to model, plan and hardware: which attention kernel, which
fusions, what dropout, what overlaps with what (DP gradient buckets, ZeRO-3/FSDP gathers with a
prefetch depth, TP communication overlap, asynchronous pipeline p2p), which collective
algorithms the communication library offers, the per-iteration framework overhead, and for
serving engines CUDA graphs, the scheduler's per-iteration overhead and whether the prompts
joining an iteration run packed into one forward or one forward each.

``FIELDS`` is the single description of every knob: its TOML section and key, its kind, its
CLI flag and help. The loader (``sim.stack.loader``), the CLI flags (``sim.cli.stack_flags``) and
``clustersim stack show`` are all generated from it, so a knob cannot exist in one and not the
others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sim.identity import hash_once, state_without_hash

# fa2-paged: FlashAttention-2's flash_attn_with_kvcache over a paged KV cache for prefill and
# decode (Sarathi-Serve's FLASH_ATTENTION backend; Vidur's A100 attention profiles)
ATTENTION_KERNELS = ("none", "math", "fa1", "fa2", "fa2-paged", "fa3", "flashinfer")
GRANULARITIES = ("layer", "parameter")
CP_COMMS = ("ring", "all_gather")  # TransformerEngine cp_comm_type "p2p" / "all_gather"
ALGORITHMS = ("ring", "tree", "hierarchical")
KINDS = ("training", "serving")
PREFILL_BATCHING = ("packed", "per-request")


@dataclass(frozen=True)
class Field:
    name: str  # Stack attribute
    section: str  # TOML table
    key: str  # key inside the table
    kind: str  # bool | enum | fraction | nonneg | int | algorithms
    flag: str  # CLI flag
    help: str
    choices: tuple = ()
    serving: bool = False  # a serving-engine knob (else a training knob; attention is both)


FIELDS: tuple[Field, ...] = (
    Field("attention_kernel", "attention", "kernel", "enum", "--attention-kernel",
          "attention kernel: none/math (scores materialised), fa1, fa2, fa2-paged (FA2 over a "
          "paged KV cache), fa3, flashinfer",
          ATTENTION_KERNELS, serving=True),
    Field("grad_accumulation_fusion", "fusions", "grad_accumulation", "bool",
          "--grad-accumulation-fusion", "weight-gradient GEMMs accumulate into main_grad"),
    Field("fused_optimizer", "fusions", "optimizer", "bool", "--fused-optimizer",
          "multi-tensor fused Adam (else one kernel per op per tensor)"),
    Field("bias_gelu_fusion", "fusions", "bias_gelu", "bool", "--bias-gelu-fusion",
          "bias add fused into the GELU kernel"),
    Field("fused_softmax", "fusions", "softmax", "bool", "--fused-softmax",
          "scale+mask+softmax in one kernel (math-path attention)"),
    Field("dropout", "dropout", "rate", "fraction0", "--dropout",
          "dropout on attention probabilities and residual branches"),
    Field("overlap_grad_reduce", "overlap", "grad_reduce", "bool", "--overlap-grad-reduce",
          "DP gradient buckets reduced during the backward pass"),
    Field("overlap_param_gather", "overlap", "param_gather", "bool", "--overlap-param-gather",
          "distributed-optimizer weight all-gather overlapped with the next forward"),
    Field("bucket_elements", "overlap", "bucket_elements", "nonneg", "--dp-bucket-size",
          "DP gradient bucket, elements (0: one bucket for the whole buffer)"),
    Field("bucket_elements_per_rank", "overlap", "bucket_elements_per_rank", "nonneg",
          "--dp-bucket-per-rank", "bucket grows by this many elements per DP rank"),
    Field("zero3_prefetch", "overlap", "zero3_prefetch", "int0", "--zero3-prefetch",
          "ZeRO-3/FSDP gathers issued ahead of the compute (0: gather on the critical path)"),
    Field("zero3_granularity", "overlap", "zero3_granularity", "enum", "--zero3-granularity",
          "ZeRO-3/FSDP gathers one call per layer or one call per parameter tensor",
          GRANULARITIES),
    Field("tp_comm_overlap", "overlap", "tp_comm", "bool", "--tp-comm-overlap",
          "TP collectives overlapped with the GEMMs around them (else on the critical path)"),
    Field("cp_comm", "overlap", "cp_comm", "enum", "--cp-comm",
          "context-parallel K/V exchange: ring (p2p, hidden behind the attention blocks) or "
          "all_gather (K/V gathered before attention, on the critical path)", CP_COMMS),
    Field("pp_async_p2p", "overlap", "pp_async_p2p", "bool", "--pp-async-p2p",
          "pipeline sends/receives asynchronous (else they block the compute stream)"),
    Field("overlap_slowdown", "overlap", "compute_slowdown", "fraction0", "--overlap-slowdown",
          "fraction by which compute slows while a collective runs beside it (SMs, HBM)"),
    Field("collective_algorithms", "collectives", "algorithms", "algorithms",
          "--collective-algorithms", "algorithms the collective library offers (ring,tree,...)",
          serving=True),
    Field("iteration_overhead_s", "framework", "iteration_overhead_s", "nonneg",
          "--framework-overhead", "per-iteration framework time, seconds"),
    Field("launch_overhead_s", "framework", "launch_overhead_s", "nonneg",
          "--launch-overhead", "CPU seconds to launch one op eagerly (a pass takes at least "
          "its ops x this)"),
    Field("cuda_graphs", "serving", "cuda_graphs", "bool", "--cuda-graphs",
          "decode iterations replayed as CUDA graphs (no per-kernel launch cost)", serving=True),
    Field("scheduler_overhead_s", "serving", "scheduler_overhead_s", "nonneg",
          "--scheduler-overhead", "serving scheduler time per iteration, seconds", serving=True),
    Field("prefill_batching", "serving", "prefill_batching", "enum", "--prefill-batching",
          "prompts joining an iteration: packed (one forward with the decodes) or per-request "
          "(one forward per prompt, then one for the decodes)", PREFILL_BATCHING, serving=True),
)
BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Stack:
    """One software stack. Defaults are the neutral values (no overhead, everything fused,
    perfect library) used only for knobs a stack of the other kind does not set."""

    name: str = "custom"
    kind: str = "training"
    description: str = ""
    attention_kernel: str = "fa2"
    grad_accumulation_fusion: bool = True
    fused_optimizer: bool = True
    bias_gelu_fusion: bool = True
    fused_softmax: bool = True
    dropout: float = 0.0
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    bucket_elements: float = 40_000_000
    bucket_elements_per_rank: float = 1_000_000
    zero3_prefetch: int = 1
    zero3_granularity: str = "layer"
    tp_comm_overlap: bool = False
    cp_comm: str = "ring"
    pp_async_p2p: bool = True
    overlap_slowdown: float = 0.0
    collective_algorithms: tuple = ALGORITHMS
    iteration_overhead_s: float = 0.0
    launch_overhead_s: float = 0.0
    cuda_graphs: bool = False
    scheduler_overhead_s: float = 0.0
    prefill_batching: str = "packed"
    sources: tuple = ()  # ((dotted key, source), ...)

    __hash__ = hash_once  # stacks key the cost caches (inside every ParallelPlan)
    __getstate__ = state_without_hash

    @property
    def flash(self) -> bool:
        """Whether attention runs as one fused kernel (scores never materialised)."""
        return self.attention_kernel not in ("none", "math")

    def bucket_bytes(self, dp: int, grad_bytes: float) -> float:
        """Bytes per DP gradient bucket (0: the whole buffer in one call)."""
        elements = max(self.bucket_elements, self.bucket_elements_per_rank * dp)
        return elements * grad_bytes

    def knobs(self) -> dict:
        """Every knob by field name (JSON-friendly)."""
        d = asdict(self)
        d["collective_algorithms"] = list(self.collective_algorithms)
        return {f.name: d[f.name] for f in FIELDS}

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                **self.knobs(), "sources": dict(self.sources)}

    def source_of(self, name: str) -> str:
        """The source covering field ``name`` (its key, or its section)."""
        f = BY_NAME[name]
        src = dict(self.sources)
        return src.get(f"{f.section}.{f.key}") or src.get(f.section, "")
