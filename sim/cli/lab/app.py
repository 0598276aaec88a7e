"""The lesson lab's ASGI app (Starlette): server-rendered pages plus the JSON API they call.

Every number comes from a CLI command run through ``bridge`` (same parser, same function,
same JSON); the pages only draw it (Plotly, served from the ``plotly`` package, so nothing
is fetched from the internet). Routes (a contract, see docs/design-lab.md):
``GET /api/exercises``, ``GET /api/exercises/{id}?seed=N``, ``POST /api/exercises/{id}/check``,
``GET /api/exercises/{id}/hint?seed=N&level=K``, ``GET /api/exercises/{id}/solution?seed=N``,
``POST /api/train``, ``POST /api/serve``, ``POST /api/explore/{explorer}``, and the
cancellable jobs ``POST /api/jobs``, ``GET|DELETE /api/jobs/{id}``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sim.cli.lab import pages
from sim.cli.lab.bridge import BadRequest, check_argv, command_line, run_cached, to_argv
from sim.cli.lab.jobs import JobStore

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
EXPLORERS = ("attention", "kv", "moe")
JOB_KINDS = ("train", "serve")


async def run(argv: list[str]):
    """The CLI's document for ``argv``, computed off the event loop (a serving simulation
    must not stall the pages or the job polling)."""
    return await run_in_threadpool(run_cached, argv)


def _error(exc: BadRequest) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def _doc(doc, argv: list[str] | None = None) -> Response:
    headers = {"X-Clustersim-Command": command_line(argv)} if argv else None
    return Response(json.dumps(doc), media_type="application/json", headers=headers)


async def _body(request: Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON; send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _seed(value) -> list[str]:
    if value is None or value == "":
        return []
    try:
        seed = int(str(value))
    except ValueError:
        raise BadRequest(f"argument --seed: invalid int value: '{value}'") from None
    return [f"--seed={seed}"]


def api(handler):
    """Turn a BadRequest raised by ``handler`` into a 4xx JSON error."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(exc)
    return wrapped


@api
async def exercise_list(request: Request) -> Response:
    return _doc(await run(["exercise", "list"]))


@api
async def exercise_show(request: Request) -> Response:
    argv = ["exercise", "show", request.path_params["id"], *_seed(request.query_params.get("seed"))]
    return _doc(await run(argv), argv)


@api
async def exercise_check(request: Request) -> Response:
    body = await _body(request)
    unknown = sorted(set(body) - {"seed", "answer"})
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; send {{\"seed\": N, \"answer\": \"...\"}}")
    answer = body.get("answer")
    if answer is None or str(answer).strip() == "":
        raise BadRequest("the following arguments are required: --answer")
    argv = ["exercise", "check", request.path_params["id"], *_seed(body.get("seed")),
            f"--answer={str(answer).strip()}"]
    return _doc(await run(argv), argv)


def _level(value) -> list[str]:
    try:
        return [f"--level={int(str(value))}"]
    except ValueError:
        raise BadRequest(f"--level: invalid int value: '{value}'") from None


@api
async def exercise_hint(request: Request) -> Response:
    """Hint K of an exercise (``exercise hint ID --seed N --level K``)."""
    argv = ["exercise", "hint", request.path_params["id"],
            *_seed(request.query_params.get("seed")),
            *_level(request.query_params.get("level", "1"))]
    return _doc(await run(argv), argv)


@api
async def exercise_solution(request: Request) -> Response:
    """The worked solution (``exercise solve ID --seed N``)."""
    argv = ["exercise", "solve", request.path_params["id"],
            *_seed(request.query_params.get("seed"))]
    return _doc(await run(argv), argv)


def _command(path: tuple[str, ...]):
    @api
    async def handler(request: Request) -> Response:
        argv = to_argv(path, await _body(request))
        return _doc(await run(argv), argv)
    return handler


@api
async def explore(request: Request) -> Response:
    name = request.path_params["explorer"]
    if name not in EXPLORERS:
        raise BadRequest(f"unknown explorer '{name}'; use one of {', '.join(EXPLORERS)}", 404)
    argv = to_argv(("explore", name), await _body(request))
    return _doc(await run(argv), argv)


@api
async def job_start(request: Request) -> Response:
    body = await _body(request)
    kind = body.get("command")
    if kind not in JOB_KINDS:
        raise BadRequest(f"command '{kind}': use one of {', '.join(JOB_KINDS)}")
    argv = to_argv((kind,), body.get("options", {}))
    check_argv(argv)  # bad flags answer now, not from the job
    job = request.app.state.jobs.start(kind, argv)
    status = request.app.state.jobs.status(job)
    return JSONResponse({**status, "command": command_line(argv)}, status_code=202)


@api
async def job_get(request: Request) -> Response:
    job = request.app.state.jobs.get(request.path_params["id"])
    if job is None:
        raise BadRequest(f"no job '{request.path_params['id']}' on this server", 404)
    return _doc(request.app.state.jobs.status(job))


@api
async def job_cancel(request: Request) -> Response:
    job = request.app.state.jobs.cancel(request.path_params["id"])
    if job is None:
        raise BadRequest(f"no job '{request.path_params['id']}' on this server", 404)
    return _doc(request.app.state.jobs.status(job))


async def plotly_js(request: Request) -> Response:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript",
                        headers={"Cache-Control": "max-age=86400"})


def _page(name: str):
    async def handler(request: Request) -> Response:
        context = await run_in_threadpool(pages.context, name)
        return templates.TemplateResponse(request, f"{name}.html", context)
    return handler


def routes() -> list:
    out = [Route("/", _page("home")), Route("/exercises", _page("exercises"))]
    out += [Route(f"/explore/{name}", _page(name)) for name in pages.EXPLORER_PAGES]
    out += [
        Route("/api/exercises", exercise_list),
        Route("/api/exercises/{id}", exercise_show),
        Route("/api/exercises/{id}/check", exercise_check, methods=["POST"]),
        Route("/api/exercises/{id}/hint", exercise_hint),
        Route("/api/exercises/{id}/solution", exercise_solution),
        Route("/api/train", _command(("train",)), methods=["POST"]),
        Route("/api/serve", _command(("serve",)), methods=["POST"]),
        Route("/api/explore/{explorer}", explore, methods=["POST"]),
        Route("/api/jobs", job_start, methods=["POST"]),
        Route("/api/jobs/{id}", job_get),
        Route("/api/jobs/{id}", job_cancel, methods=["DELETE"]),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return out


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    yield
    app.state.jobs.shutdown()  # no simulation outlives the server


def create_app() -> Starlette:
    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.jobs = JobStore()
    return app
