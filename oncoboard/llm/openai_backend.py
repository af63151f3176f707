"""Client for any OpenAI-compatible chat endpoint (a ``vllm serve`` deployment, or ``oncoboard serve-model``).

With vLLM serving the base model and the LoRA adapter under a name
(``vllm serve BASE --enable-lora --lora-modules oncoboard=ADAPTER``), set ``ONCOBOARD_LLM_MODEL=oncoboard``
so requests go to the adapter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from oncoboard.llm.base import LLMError, Message

logger = logging.getLogger(__name__)


class OpenAIChatModel:
    """Chat completions over HTTP with timeouts and clear errors."""

    def __init__(
        self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    @property
    def describe(self) -> str:
        """``openai/<model>@<host>``."""
        return f"openai/{self.model}@{httpx.URL(self.base_url).host}"

    def _body(
        self, messages: Sequence[Message], max_tokens: int, temperature: float, stream: bool
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        """One completion."""
        try:
            response = self._client.post(
                "/chat/completions", json=self._body(messages, max_tokens, temperature, False)
            )
        except httpx.HTTPError as exc:
            raise LLMError(f"model endpoint {self.base_url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise LLMError(f"model endpoint answered {response.status_code}: {response.text[:200]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"])
        except (KeyError, IndexError, ValueError) as exc:
            raise LLMError("model endpoint returned an unexpected body") from exc

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """Server-sent events, yielding content deltas."""
        body = self._body(messages, max_tokens, temperature, True)
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise LLMError(f"model endpoint answered {response.status_code}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
        except httpx.HTTPError as exc:
            raise LLMError(f"model endpoint {self.base_url} failed while streaming: {exc}") from exc

    def models(self) -> list[str]:
        """Model ids the endpoint serves."""
        try:
            response = self._client.get("/models")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise LLMError(f"model endpoint {self.base_url} unreachable: {exc}") from exc
        return [m["id"] for m in response.json().get("data", [])]
