"""The HTTP server: `create_app(model)` -> a FastAPI app over one loaded run (`sidrec serve`).

POST /recommend, POST /recommend/batch, GET /items?q=, GET /items/{id}, GET /health, GET /metrics,
and the web page at /. Every bad request gets a 4xx whose `error` names the field and the fix.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sidrec.api import Model, UnknownItemsError
from sidrec.serve.batcher import Batcher, Metrics, Overloaded

MAX_HISTORY = 1000  # items per history; the model reads the last data.max_history of them
MAX_K = 100
MAX_BATCH_REQUESTS = 64
MAX_BODY_BYTES = 1 << 20
EXAMPLE = '{"history": ["ITEM_ID", "ITEM_ID"], "k": 10}'
ENDPOINTS = "POST /recommend, POST /recommend/batch, GET /items?q=, GET /items/{id}, GET /health, GET /metrics, GET /"


class RecommendRequest(BaseModel):
    """One user's history of original item ids (oldest first) and what to return."""

    model_config = ConfigDict(strict=True, extra="forbid")
    history: list[str] = Field(min_length=1, max_length=MAX_HISTORY, description="item ids, oldest first")
    k: int = Field(10, ge=1, le=MAX_K, description="how many items to return")
    exclude_history: bool = Field(False, description="drop items already in the history")
    skip_unknown: bool = Field(False, description="drop unknown history ids instead of answering 422")
    user: str | None = Field(None, description="original user id (used by models with user tokens)")
    times: list[int] | None = Field(
        None, description="each history event's timestamp (seconds), for models that read it"
    )
    actions: list[int] | None = Field(
        None, description="each history event's action (e.g. its rating): HSTU, the ranker"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    requests: list[RecommendRequest] = Field(min_length=1, max_length=MAX_BATCH_REQUESTS)


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _describe(errors: list[dict]) -> str:
    """Pydantic errors -> one line per field: where, what is wrong, what was sent."""
    lines = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx", {}).get("error", "")
            lines.append(f"malformed JSON ({ctx}); send a JSON object like {EXAMPLE}")
            continue
        if e.get("type") == "model_attributes_type" or (where == "body" and e.get("type") == "dict_type"):
            lines.append(f"the body must be a JSON object like {EXAMPLE}")
            continue
        if e.get("type") == "missing":
            lines.append(f"{where}: Field required")
            continue
        got = e.get("input")
        shown = json.dumps(got)[:60] if isinstance(got, (int, float, str, bool, type(None))) else type(got).__name__
        if isinstance(got, list):
            shown = f"a list of {len(got)}"
        lines.append(f"{where}: {e.get('msg', 'invalid')} (got {shown})")
    if len(errors) > 5:
        lines.append(f"... and {len(errors) - 5} more")
    return "; ".join(lines)


def _route(path: str) -> str:
    if path.startswith("/items/"):
        return "/items/{id}"
    return path if path in {"/", "/recommend", "/recommend/batch", "/items", "/health", "/metrics"} else "other"


class Guard:
    """ASGI middleware: refuses bodies over `limit` bytes with 413, and times every request for /metrics.

    It reads the whole body first (draining an oversized one, so the client sees the 413 rather than
    a reset connection), then replays it to the app.
    """

    def __init__(self, app, metrics: Metrics, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.metrics, self.limit = app, metrics, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size <= self.limit:
                chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            if size > self.limit:
                msg = f"request body is {size} bytes, over the {self.limit}-byte limit; send fewer history items"
                await _error(413, msg)(scope, receive, counted_send)
                return
            replayed = [False]

            async def replay():
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()

            await self.app(scope, replay, counted_send)
        finally:
            self.metrics.observe(_route(scope["path"]), status[0], (time.perf_counter() - start) * 1000)


async def _watch_catalog(model: Model, every: float = 1.0) -> None:
    """Reload the model, off the event loop, when items are added to its run (`sidrec add-items`): no restart."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every)
        if model.changed():
            await loop.run_in_executor(None, model.refresh)


def create_app(model: Model, *, max_batch: int = 64, max_wait_ms: float = 2.0, max_queue: int = 0) -> FastAPI:
    """The app over an already loaded model (it loads once, in `sidrec serve`, before the port opens). With
    `max_queue`, a request finding more histories than that waiting gets 503 and Retry-After (load shedding)."""
    metrics = Metrics()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["batcher"] = Batcher(model, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
        state["batcher"].start()
        watch = asyncio.create_task(_watch_catalog(model))
        yield
        watch.cancel()
        await state["batcher"].stop()  # uvicorn has finished the in-flight requests by now

    options: dict = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:  # FastAPI >= 0.16x: its per-request OpenTelemetry
        # hooks cost more than our own /metrics; this server exports nothing, so they are off.
        options["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="sidrec", summary="Recommendations from a trained sidrec run", lifespan=lifespan, **options)
    app.add_middleware(Guard, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, _describe(list(exc.errors())), example=json.loads(EXAMPLE))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        hints = {
            400: f"the body is not valid UTF-8 JSON; send a JSON object like {EXAMPLE}",
            404: f"no such endpoint {request.url.path}; see {ENDPOINTS}",
            405: f"{request.method} is not allowed on {request.url.path}; see {ENDPOINTS}",
        }
        return _error(exc.status_code, hints.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(UnknownItemsError)
    async def unknown(request: Request, exc: UnknownItemsError):
        return _error(422, exc.explain("http"), unknown_items=exc.items[:100])

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError):
        return _error(422, str(exc))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded):
        response = _error(503, f"the server is at capacity ({exc}); retry after a second")
        response.headers["Retry-After"] = "1"
        return response

    async def _run(reqs: list[RecommendRequest]) -> list[dict]:
        histories, skipped, events = [], [], []
        for i, r in enumerate(reqs):
            try:
                events.append(model.encode_events(r.history, times=r.times, actions=r.actions))
                histories.append(model.encode_history(r.history, r.skip_unknown))
            except UnknownItemsError as err:  # a batch says which request
                raise UnknownItemsError(
                    err.items, "in history" if len(reqs) == 1 else f"in requests[{i}].history"
                ) from None
            skipped.append([i for i in dict.fromkeys(r.history) if i not in model.index])
        if any(len(h) == 0 for h in histories):
            raise ValueError("no known item in history (all were skipped); give at least one id from GET /items?q=")
        if max(r.k for r in reqs) > model.n_items:
            raise ValueError(f"k must be at most the number of items ({model.n_items})")
        start = time.perf_counter()
        out = []
        # Each request is its own job so that a batch request and single requests batch together.
        recs = await state["batcher"].submit(
            histories, [r.user for r in reqs], max(r.k for r in reqs), [r.exclude_history for r in reqs], events
        )
        ms = round((time.perf_counter() - start) * 1000, 2)
        for r, rows, skip in zip(reqs, recs, skipped, strict=True):
            out.append({"items": [x.to_dict() for x in rows[: r.k]], "skipped": skip, "model_ms": ms})
        return out

    # These two return their JSON directly: FastAPI's generic encoder costs more than the rest of a request.
    @app.post("/recommend", response_class=JSONResponse)
    async def recommend(req: RecommendRequest) -> JSONResponse:
        """Top-k items for one history: item_id, rank, score, title, sid."""
        return JSONResponse((await _run([req]))[0])

    @app.post("/recommend/batch", response_class=JSONResponse)
    async def recommend_batch(req: BatchRequest) -> JSONResponse:
        """Top-k items for up to 64 histories in one call."""
        return JSONResponse({"results": await _run(req.requests)})

    @app.get("/items")
    async def items(
        q: str = Query(..., min_length=1, max_length=200, description="words that must all appear in the title"),
        limit: int = Query(20, ge=1, le=100),
    ) -> dict:
        """Items whose title contains every word of q (or whose id is q)."""
        return {"items": model.search(q, limit)}

    @app.get("/items/{item_id}")
    async def item(item_id: str):
        try:
            return model.item(item_id)
        except KeyError:
            return _error(404, f"unknown item id {item_id!r}; search ids with GET /items?q=WORDS")

    @app.get("/health")
    async def health() -> dict:
        cfg = model.config
        return {
            "status": "ok",
            "run_dir": str(model.run_dir),
            "model": cfg.model.name,
            "dataset": cfg.data.name if not cfg.data.path else cfg.data.path,
            "items": model.n_items,
            "load_seconds": round(model.load_seconds, 2),
            "limits": {
                "max_history": MAX_HISTORY,
                "max_k": min(MAX_K, model.n_items),
                "max_body_bytes": MAX_BODY_BYTES,
            },
        }

    @app.get("/metrics")
    async def get_metrics() -> dict:
        return metrics.snapshot(state.get("batcher"))

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("sidrec.serve").joinpath("static/index.html").read_text())

    return app
