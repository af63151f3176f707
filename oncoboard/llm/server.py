"""An OpenAI-compatible server (``/v1/chat/completions``, ``/v1/models``) over a local backend.

This is what ``oncoboard serve-model`` runs; the project's ``openai`` backend is tested against it
over real HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from oncoboard.llm.base import LanguageModel, LLMError, Message


class ChatMessageIn(BaseModel):
    """One message of a request."""

    role: str
    content: str


class ChatRequest(BaseModel):
    """The subset of the chat-completions request the server honours."""

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stream: bool = False


def create_model_server(llm: LanguageModel, served_name: str) -> FastAPI:
    """The app serving ``llm`` under ``served_name``."""
    app = FastAPI(title="oncoboard model server", version="1")

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served_name, "object": "model", "owned_by": "oncoboard"}]}

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: ChatRequest) -> dict[str, Any] | StreamingResponse:
        if request.model != served_name:
            raise HTTPException(404, f"model {request.model!r} is not served here (serving {served_name!r})")
        messages = [Message(m.role, m.content) for m in request.messages]
        created = int(time.time())
        rid = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        if request.stream:

            def events() -> Iterator[str]:
                for piece in llm.stream(
                    messages, max_tokens=request.max_tokens, temperature=request.temperature
                ):
                    chunk = {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": served_name,
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        try:
            text = llm.generate(messages, max_tokens=request.max_tokens, temperature=request.temperature)
        except LLMError as exc:
            raise HTTPException(503, str(exc)) from exc
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": served_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }

    return app
