"""The chat page at ``/`` and the chat endpoints over recorded consultations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import CurrentUser, ServiceDep
from app.api.schemas import ID_PATTERN, ErrorPublic
from app.chat.engine import CaseNotFound, ChatEngine, ChatReply

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "i18n.json": "application/json",
}
# The page loads nothing from elsewhere: scripts, styles and connections stay on this origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

router = APIRouter()


class ChatMessage(BaseModel):
    """A question or what-if change about a recorded case."""

    message: str = Field(min_length=1, max_length=2000, description="The question, English or German.")
    lang: Literal["en", "de"] | None = Field(
        default=None, description="Answer language; the case's language when absent."
    )


class WhoAmI(BaseModel):
    """The user behind the bearer token, so the page can offer the actions of that role."""

    name: str
    role: Literal["resident", "attending", "chief"]


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The consultation page (no token needed to load it; every call it makes needs one)."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/chat/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """One of the page's own files (a fixed list: nothing else on disk is reachable)."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/v1/chat/me", response_model=WhoAmI, tags=["chat"])
def whoami(user: CurrentUser) -> WhoAmI:
    """The name and role of the token's user."""
    return WhoAmI(name=user.name, role=user.role)


@router.post(
    "/v1/consultations/{case_id}/chat",
    response_model=ChatReply,
    tags=["chat"],
    responses={404: {"model": ErrorPublic, "description": "No report for this case id."}},
)
async def chat(
    case_id: Annotated[str, PathParam(pattern=ID_PATTERN, description="The report's pseudonymous case id.")],
    body: ChatMessage,
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
) -> ChatReply:
    """Answer a question about a case from its report and trace, or fork its run for a what-if change.

    The reply lists its sources (report fields, trace events, evidence ids); a what-if change also
    returns the difference between the recorded report and the forked one (never stored).
    """
    request.state.case_id = case_id
    engine = ChatEngine(service)
    try:
        return await run_in_threadpool(engine.ask, case_id, body.message, lang=body.lang)
    except CaseNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report for case {case_id}") from exc
