"""CostContext: memo tables keyed by value (never by id()), shared by the analytic backend and
the plan search's bounds."""

from __future__ import annotations

import pickle
import re
from dataclasses import fields, replace
from pathlib import Path

from hardware import Cluster
from sim.costs.analytic import estimate_train
from sim.costs.context import STEP_ONLY_FIELDS, CostContext, LayerKey
from sim.model import get_model
from sim.plan import ParallelPlan

SIM = Path(__file__).resolve().parents[1] / "sim"


def test_every_plan_field_is_either_in_the_layer_key_or_declared_step_only():
    names = {f.name for f in fields(ParallelPlan)}
    layer = set(LayerKey._fields) - {"moe"}
    assert layer | set(STEP_ONLY_FIELDS) == names
    assert not layer & set(STEP_ONLY_FIELDS)


def test_equal_models_share_one_context_and_its_tables():
    cluster = Cluster.for_gpus("dgx-h100", 8)
    a, b = get_model("llama3-8b"), get_model("llama3-8b").with_(name="llama3-8b")
    assert a == b
    assert CostContext.of(a, cluster) is CostContext.of(b, cluster)
    plan = ParallelPlan(tp=8, dp=1, global_batch=8, seq_len=1024)
    r = estimate_train(a, plan, cluster)
    assert estimate_train(b, plan, cluster).step_time_s == r.step_time_s
    assert len(CostContext.of(a, cluster).memo("layer_cost")) >= 1


def test_a_changed_model_gets_its_own_costs():
    cluster = Cluster.for_gpus("dgx-h100", 8)
    plan = ParallelPlan(tp=8, dp=1, global_batch=8, seq_len=1024)
    m = get_model("llama3-8b")
    wide = m.with_(ffn_hidden=2 * m.ffn_hidden)
    assert estimate_train(wide, plan, cluster).step_time_s > \
        estimate_train(m, plan, cluster).step_time_s


def test_a_pickled_model_or_plan_rehashes_in_the_new_process():
    m = get_model("llama3-8b")
    plan = ParallelPlan(tp=2)
    hash(m), hash(plan)
    m2, p2 = pickle.loads(pickle.dumps(m)), pickle.loads(pickle.dumps(plan))
    assert "_hash" not in m2.__dict__ and "_hash" not in p2.__dict__
    assert m2 == m and hash(m2) == hash(m) and hash(p2) == hash(replace(plan))


def test_no_module_keeps_a_cache_keyed_by_id():
    offenders = [str(p.relative_to(SIM)) for p in SIM.rglob("*.py")
                 if re.search(r"\b(_KEEP|_CLUSTERS|_MODELS|_CTX|ident|mkey|ckey|skey)\b", p.read_text())]
    assert offenders == []
