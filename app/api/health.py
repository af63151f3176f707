"""Liveness and readiness probes (no authentication, not logged)."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep
from app.api.schemas import HealthPublic
from oncoboard.storage import MIGRATIONS_DIR, StorageError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is up."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def readyz(runtime: RuntimeDep) -> HealthPublic | JSONResponse:
    """The database is reachable and every migration has been applied."""
    expected = {p.name for p in MIGRATIONS_DIR.glob("*.sql")}
    try:
        with runtime.db.connect() as conn:
            applied = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
    except (StorageError, psycopg.Error) as exc:
        logger.warning("not ready: %s", exc)
        return JSONResponse(
            HealthPublic(status="unavailable", detail="database unreachable").model_dump(), status_code=503
        )
    missing = sorted(expected - applied)
    if missing:
        return JSONResponse(
            HealthPublic(
                status="unavailable", detail=f"pending migrations: {', '.join(missing)}"
            ).model_dump(),
            status_code=503,
        )
    return HealthPublic(status="ok")
