"""The lesson lab's HTTP API answers what the CLI prints, and bad input the CLI's message."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from sim.cli.lab.app import create_app  # noqa: E402
from sim.cli.main import main  # noqa: E402

TRAIN = {"model": "llama3-8b", "system": "dgx-h100", "gpus": 8, "tp": 8, "pp": 1,
         "global_batch": 16, "seq": 4096, "sequence_parallel": True, "recompute": "selective"}
SERVE = {"model": "llama3-8b", "system": "dgx-h100", "tp": 1, "policy": "continuous",
         "arrival_rate": 5, "num_requests": 40, "prompt_tokens": 256, "output_tokens": 32}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        yield c


def cli_json(capsys, *argv):
    capsys.readouterr()
    status = main([*argv, "--json"])
    assert status == 0
    return json.loads(capsys.readouterr().out)


def cli_error(capsys, *argv) -> str:
    """The one-line message the CLI prints after 'error: ' (argparse or ClusterSimError)."""
    capsys.readouterr()
    try:
        status = main(list(argv))
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    return err.split("error: ", 1)[1]


def flags(opts: dict) -> list[str]:
    out = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [flag, str(v)]
    return out


def test_exercise_list_is_the_cli_list(client, capsys):
    r = client.get("/api/exercises")
    assert r.status_code == 200
    assert r.json() == cli_json(capsys, "exercise", "list")


def test_exercise_show_with_a_seed_is_the_cli_show(client, capsys):
    first = client.get("/api/exercises").json()[0]["id"]
    r = client.get(f"/api/exercises/{first}", params={"seed": 7})
    assert r.status_code == 200
    assert r.json() == cli_json(capsys, "exercise", "show", first, "--seed", "7")
    assert "--seed=7" in r.headers["X-Clustersim-Command"]


def test_exercise_check_wrong_then_right_matches_the_cli(client, capsys):
    ex = client.get("/api/exercises").json()[0]["id"]
    right = cli_json(capsys, "exercise", "check", ex, "--seed", "3", "--answer", "1")["expected"]
    for answer, correct in ((3 * right, False), (right, True)):
        r = client.post(f"/api/exercises/{ex}/check", json={"seed": 3, "answer": repr(answer)})
        assert r.status_code == 200
        doc = r.json()
        assert doc == cli_json(capsys, "exercise", "check", ex, "--seed", "3", "--answer",
                               repr(answer))
        assert doc["correct"] is correct and doc["explanation"]


def test_hint_and_solution_routes_answer_what_the_cli_does(client, capsys):
    ex = client.get("/api/exercises").json()[0]["id"]
    for route, argv in ((f"/api/exercises/{ex}/hint?seed=2&level=1",
                         ["exercise", "hint", ex, "--seed", "2", "--level", "1"]),
                        (f"/api/exercises/{ex}/solution?seed=2",
                         ["exercise", "solve", ex, "--seed", "2"])):
        r = client.get(route)
        capsys.readouterr()
        status = main([*argv, "--json"])
        out = json.loads(capsys.readouterr().out)
        if status == 0:
            assert r.status_code == 200 and r.json() == out
        else:  # a CLI without that action: the same message
            assert r.status_code == 400 and r.json()["error"] == out["error"]["message"]
    assert client.get(f"/api/exercises/{ex}/hint?level=x").status_code == 400


def test_unknown_exercise_is_a_404_free_4xx_with_the_cli_message(client, capsys):
    r = client.get("/api/exercises/no-such-exercise")
    assert 400 <= r.status_code < 500
    assert r.json()["error"] == cli_error(capsys, "exercise", "show", "no-such-exercise")


def test_a_non_numeric_answer_gets_the_cli_message(client, capsys):
    ex = client.get("/api/exercises").json()[0]["id"]
    r = client.post(f"/api/exercises/{ex}/check", json={"seed": 1, "answer": "lots"})
    assert r.status_code == 400
    assert r.json()["error"] == cli_error(capsys, "exercise", "check", ex, "--seed", "1",
                                          "--answer", "lots")


def test_check_without_an_answer_or_with_a_bad_seed_is_a_400(client):
    ex = client.get("/api/exercises").json()[0]["id"]
    assert client.post(f"/api/exercises/{ex}/check", json={"seed": 1}).status_code == 400
    r = client.post(f"/api/exercises/{ex}/check", json={"seed": "x", "answer": "1"})
    assert r.status_code == 400 and "--seed" in r.json()["error"]
    assert client.get(f"/api/exercises/{ex}", params={"seed": "x"}).status_code == 400
    assert client.post(f"/api/exercises/{ex}/check", content=b"{nope").status_code == 400


def test_train_takes_the_cli_options_as_json_keys(client, capsys):
    r = client.post("/api/train", json=TRAIN)
    assert r.status_code == 200
    assert r.json() == cli_json(capsys, "train", *flags(TRAIN))
    dashed = {k.replace("_", "-"): v for k, v in TRAIN.items()}
    assert client.post("/api/train", json=dashed).json() == r.json()


def test_train_bad_plan_gets_the_cli_message(client, capsys):
    bad = {**TRAIN, "tp": 3, "gpus": 3}
    r = client.post("/api/train", json=bad)
    assert r.status_code == 400
    assert r.json()["error"] == cli_error(capsys, "train", *flags(bad))


def test_train_bad_types_choices_and_keys_are_400s_naming_the_flag(client, capsys):
    r = client.post("/api/train", json={**TRAIN, "tp": "eight"})
    assert r.status_code == 400
    assert r.json()["error"] == cli_error(capsys, "train", *flags({**TRAIN, "tp": "eight"}))
    r = client.post("/api/train", json={**TRAIN, "recompute": "some"})
    assert r.status_code == 400 and "--recompute" in r.json()["error"]
    r = client.post("/api/train", json={**TRAIN, "teepee": 8})
    assert r.status_code == 400 and "unknown option 'teepee'" in r.json()["error"]
    r = client.post("/api/train", json={k: v for k, v in TRAIN.items() if k != "seq"})
    assert r.status_code == 400 and "--seq" in r.json()["error"]
    r = client.post("/api/train", json=[1, 2])
    assert r.status_code == 400


def test_train_refuses_options_that_write_files_on_the_server(client):
    r = client.post("/api/train", json={**TRAIN, "engine": "des", "timeline": "/tmp/x.png"})
    assert r.status_code == 400 and "writes a file" in r.json()["error"]


def test_serve_takes_the_cli_options_as_json_keys(client, capsys):
    r = client.post("/api/serve", json=SERVE)
    assert r.status_code == 200
    assert r.json() == cli_json(capsys, "serve", *flags(SERVE))


def test_serve_bad_policy_gets_the_cli_message(client, capsys):
    bad = {**SERVE, "policy": "eager"}
    r = client.post("/api/serve", json=bad)
    assert r.status_code == 400
    assert r.json()["error"] == cli_error(capsys, "serve", *flags(bad))


@pytest.mark.parametrize("name,opts", [
    ("attention", {"model": "llama3-8b", "contexts": "1024,8192", "window": 2048}),
    ("kv", {"model": "llama3-70b", "tp": 8, "contexts": "4096,32768", "batch": 4}),
    ("moe", {"experts": 16, "top_k": 2, "zipf_s": 1.2, "capacity_factor": 1.25}),
])
def test_explorers_answer_what_clustersim_explore_prints(client, capsys, name, opts):
    r = client.post(f"/api/explore/{name}", json=opts)
    assert r.status_code == 200
    assert r.json() == cli_json(capsys, "explore", name, *flags(opts))
    assert r.headers["X-Clustersim-Command"].startswith(f"clustersim explore {name} ")


def test_explorer_bad_input_and_unknown_explorer(client, capsys):
    r = client.post("/api/explore/moe", json={"top_k": 9, "experts": 8})
    assert r.status_code == 400
    assert r.json()["error"] == cli_error(capsys, "explore", "moe", "--top-k", "9")
    assert client.post("/api/explore/nope", json={}).status_code == 404


def test_pages_render_the_lesson_map_and_serve_plotly_locally(client):
    home = client.get("/").text
    for text in ("Lesson 1 - Mixture of Experts", "Lesson 3 - Training and serving at scale",
                 "Parallelism is just splitting the data across GPUs", "/explore/kv",
                 "/exercises#"):
        assert text in home
    for page in ("attention", "kv", "moe", "parallel", "serving"):
        assert client.get(f"/explore/{page}").status_code == 200
    assert client.get("/exercises").status_code == 200
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert "http" not in client.get("/").text.split("<body")[0].replace("http-equiv", "")


def _wait(client, job_id: str, until: float) -> dict:
    while True:
        st = client.get(f"/api/jobs/{job_id}").json()
        if st["state"] != "running" or time.monotonic() > until:
            return st
        time.sleep(0.2)


@pytest.mark.slow
def test_a_serving_job_runs_the_cli_in_the_background_and_returns_its_timeline(client):
    r = client.post("/api/jobs", json={"command": "serve", "options": SERVE})
    assert r.status_code == 202 and r.json()["command"].startswith("clustersim serve ")
    st = _wait(client, r.json()["id"], time.monotonic() + 120)
    assert st["state"] == "done"
    assert st["result"] == client.post("/api/serve", json=SERVE).json()
    tl = st["timeline"]
    assert len(tl["t_s"]) == len(tl["batch"]) > 0 and max(tl["batch"]) >= 1


@pytest.mark.slow
def test_a_long_job_can_be_cancelled_and_bad_jobs_are_refused(client):
    long = {**SERVE, "num_requests": 200000, "arrival_rate": 50}
    r = client.post("/api/jobs", json={"command": "serve", "options": long})
    job = r.json()["id"]
    st = client.delete(f"/api/jobs/{job}").json()
    assert st["state"] == "cancelled"
    assert client.get(f"/api/jobs/{job}").json()["state"] == "cancelled"
    bad = client.post("/api/jobs", json={"command": "serve", "options": {**SERVE, "tp": "x"}})
    assert bad.status_code == 400 and "--tp" in bad.json()["error"]
    assert client.post("/api/jobs", json={"command": "report"}).status_code == 400
    assert client.get("/api/jobs/999999").status_code == 404
