"""The compiled lean engine (setup.py, sim.serving.native) against its own Python source."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sim.serving import native

SERVE = ["serve", "--model", "llama2-7b", "--system", "dgx-a100-80gb", "--tp", "1", "--num-requests",
         "400", "--arrival-rate", "30", "--prompt-tokens", "lognormal:400:1",
         "--output-tokens", "lognormal:300:1", "--max-batch", "64", "--seed", "5", "--json"]
PROBE = ("import json, sys; from sim.cli.main import main; from sim.serving import native; "
         "sys.stderr.write(json.dumps(native.compiled()) + '\\n'); raise SystemExit(main(sys.argv[1:]))")


def _serve(args: list[str], interpreted: bool) -> tuple[str, dict]:
    env = dict(os.environ, CLUSTERSIM_INTERPRETED="1" if interpreted else "0")
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=env, timeout=300, check=True)
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("policy", [
    ["--policy", "continuous"],
    ["--policy", "prefill-first", "--max-batched-tokens", "2048"],
    ["--policy", "continuous", "--gpu-memory-utilization", "0.2", "--replicas", "2"],
])
def test_the_compiled_and_the_interpreted_lean_engine_print_the_same_json(policy):
    compiled_out, compiled = _serve(SERVE + policy, interpreted=False)
    source_out, source = _serve(SERVE + policy, interpreted=True)
    assert source == {m: False for m in native.SOURCES}
    if os.environ.get("CI") == "true":  # CI installs with a compiler: the build must be there
        assert compiled == {m: True for m in native.SOURCES}
    doc = json.loads(compiled_out)
    assert doc["requests_completed"] > 300 and doc["iterations"] > 1000
    assert compiled_out == source_out


def test_an_extension_built_from_another_source_is_ignored(tmp_path):
    for name in ("lean", "decoderun"):
        (tmp_path / f"{name}.py").write_text(f"X = '{name}'\n")
        (tmp_path / f"{name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    stamp = {"sim.serving.lean": native.source_hash(tmp_path / "lean.py"),
             "sim.serving.decoderun": "0" * 64}
    (tmp_path / native.STAMP).write_text(json.dumps(stamp))
    assert native.stale_extensions(tmp_path) == {"sim.serving.decoderun":
                                                 tmp_path / "decoderun.py"}
    (tmp_path / "lean.pxd").write_text("cdef int x\n")  # its C types changed: stale too
    assert set(native.stale_extensions(tmp_path)) == {"sim.serving.lean",
                                                      "sim.serving.decoderun"}
    (tmp_path / native.STAMP).unlink()  # built before stamps existed: stale
    assert len(native.stale_extensions(tmp_path)) == 2


def test_a_source_without_an_extension_is_not_stale(tmp_path):
    (tmp_path / "lean.py").write_text("X = 1\n")
    assert native.stale_extensions(tmp_path) == {}
