"""ServingConfig: every knob of a serving simulation in one frozen, serialisable record.

The record is what ``clustersim serve --json`` reports as ``config``; ``validate`` turns a
broken combination into a ``ConfigError`` that names the flag and the fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sim.errors import ConfigError
from sim.serving.deployments import DEPLOYMENTS, deployment_for
from sim.serving.policies import POLICIES

# --policy: a batching policy on colocated replicas, or a deployment that sets its own
POLICY_NAMES = (*POLICIES, *(name for name in DEPLOYMENTS if name != "colocated"))
ROUTERS = ("round-robin", "least-outstanding")
PREEMPTION = ("recompute", "swap")
# PCIe 5.0 x16: 32 GT/s x 16 lanes, 128b/130b => ~63 GB/s per direction (PCI-SIG PCIe 5.0 spec)
PCIE5_X16_BYTES_PER_S = 63.0e9


@dataclass(frozen=True)
class ServingConfig:
    model: str = "llama3-8b"
    system: str = "dgx-h100"
    tp: int = 1
    pp: int = 1
    ep: int = 1
    replicas: int = 1
    policy: str = "continuous"
    max_batch: int = 256
    block_size: int = 16
    chunk_tokens: int = 512
    max_batched_tokens: int | None = None  # tokens per iteration (vLLM max_num_batched_tokens)
    batch_timeout_s: float = 0.05
    preemption: str = "recompute"
    router: str = "round-robin"
    prefill_replicas: int = 1
    decode_replicas: int = 1
    gpu_memory_utilization: float = 0.9
    swap_bandwidth: float = PCIE5_X16_BYTES_PER_S
    dtype: str = "bf16"
    draft_model: str | None = None
    speculative_tokens: int = 0
    acceptance: str = "0.8"  # "A" (fixed) or "beta:ALPHA:BETA" (per request)
    slo_ttft_s: float = 1.0
    slo_tpot_s: float = 0.1
    exact_step_times: bool = False
    fast_forward: bool = True  # decode-only runs in one timeout (identical results; faster)
    seed: int = 0
    stack: object = None  # sim.stack.Stack of the serving engine (None: GPU time only)

    def validate(self) -> ServingConfig:
        for name in ("tp", "pp", "ep", "replicas", "max_batch", "block_size", "chunk_tokens",
                     "prefill_replicas", "decode_replicas"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1 "
                                  f"(got {getattr(self, name)})")
        if self.max_batched_tokens is not None and self.max_batched_tokens < self.max_batch:
            raise ConfigError(f"--max-batched-tokens {self.max_batched_tokens} is below "
                              f"--max-batch {self.max_batch}: every decoding sequence needs a "
                              "token per iteration; raise it (vLLM requires the same)",
                              flag="--max-batched-tokens")
        _choice("policy", self.policy, POLICY_NAMES)
        _choice("router", self.router, ROUTERS)
        _choice("preemption", self.preemption, PREEMPTION)
        if self.speculative_tokens < 0:
            raise ConfigError("--speculative-tokens must be >= 0")
        if self.speculative_tokens and not self.draft_model:
            raise ConfigError("--speculative-tokens needs --draft-model NAME (the proposer)")
        if self.draft_model and not self.speculative_tokens:
            raise ConfigError("--draft-model needs --speculative-tokens K >= 1")
        if self.batch_timeout_s < 0 or self.slo_ttft_s <= 0 or self.slo_tpot_s <= 0:
            raise ConfigError("--batch-timeout must be >= 0 s and SLOs > 0 s")
        return self

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp * self.ep  # ep attention groups of tp x pp GPUs

    @property
    def deployment(self) -> str:
        """The ``sim.serving.deployments`` entry this configuration runs."""
        return deployment_for(self.policy)

    @property
    def n_replicas(self) -> int:
        return DEPLOYMENTS[self.deployment].n_replicas(self)

    def plan(self):
        """The replica's parallel layout as a ``ParallelPlan`` (tp x pp GPUs per attention
        group, ep groups sharing the experts; one sequence-batch per group)."""
        from sim.plan import ParallelPlan

        return ParallelPlan(tp=self.tp, pp=self.pp, dp=self.ep, ep=self.ep,
                            global_batch=self.ep, dtype=self.dtype)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stack"] = ({"name": self.stack.name, **self.stack.knobs()}
                      if self.stack is not None else None)
        return d


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{flag} '{value}' is not one of {', '.join(allowed)}")
