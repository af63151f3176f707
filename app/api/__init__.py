"""The REST API (FastAPI): consultations, jobs, traces, health; OpenAPI at ``/openapi.json``.

Every ``/v1`` route needs ``Authorization: Bearer <token>``; every access to them (refused ones
included) is written to the access log with the user, the route, the case or job and the status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from app.api import consultations, health, jobs, traces
from app.api.deps import Runtime, ServiceFactory
from app.chat.router import router as chat_router
from app.jobs import WorkerSettings
from oncoboard.auth import Access, log_access

logger = logging.getLogger(__name__)

__all__ = ["create_app"]


def _default_factory() -> ServiceFactory:
    from app.jobs import open_service

    return open_service


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    if route is not None:
        return str(getattr(route, "path", request.url.path))
    # Unmatched (404) or refused before routing completed: find the template if one matches.
    for candidate in request.app.router.routes:
        match, _ = candidate.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", request.url.path))
    return "(unmatched)"


def _clean(value: object) -> str | None:
    """A path value fit for the log (ids that failed validation may hold anything)."""
    if value is None:
        return None
    return str(value).replace("\x00", "")[:200]


def create_app(
    service_factory: ServiceFactory | None = None,
    *,
    workers: int = 0,
    worker_settings: WorkerSettings | None = None,
) -> FastAPI:
    """The application; ``service_factory`` builds the ConsultService (once, at start-up).

    ``workers`` > 0 runs that many job workers as threads of this process (single-machine use).
    """
    runtime = Runtime(service_factory or _default_factory(), workers=workers, worker_settings=worker_settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="oncoboard",
        version="1",
        summary="Tumour-board consultations: staging, coding, evidence, schemes, safety, audit.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/v1"):
            params = request.scope.get("path_params") or {}
            access = Access(
                method=request.method,
                route=_route_template(request),
                status_code=response.status_code,
                user=getattr(request.state, "user", None),
                case_id=_clean(getattr(request.state, "case_id", None) or params.get("case_id")),
                job_id=_clean(getattr(request.state, "job_id", None) or params.get("job_id")),
            )
            await run_in_threadpool(log_access, runtime.db, access)
        return response

    app.include_router(health.router)
    app.include_router(consultations.router)
    app.include_router(jobs.router)
    app.include_router(traces.router)
    app.include_router(chat_router)
    return app
