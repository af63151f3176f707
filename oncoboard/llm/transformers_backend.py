"""Local transformers backend with an optional PEFT LoRA adapter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from oncoboard.llm.base import LLMError, Message

logger = logging.getLogger(__name__)


class TransformersModel:
    """A causal LM loaded from a local directory (never from a hub)."""

    def __init__(
        self, model_dir: str | Path, adapter_dir: str | Path | None = None, *, threads: int | None = None
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = Path(model_dir)
        if not path.is_dir():
            raise LLMError(f"model directory not found: {path}")
        self.model_dir = path
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.float32
        )
        if self.adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter_dir, is_trainable=False)
        model.eval()
        self.model = model
        self._lock = threading.Lock()

    @property
    def describe(self) -> str:
        """``transformers/<model dir name>/<adapter dir name or none>``."""
        adapter = self.adapter_dir.name if self.adapter_dir else "none"
        return f"transformers/{self.model_dir.name}/{adapter}"

    def _encode(self, messages: Sequence[Message]) -> Any:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in chat) + "\nassistant:"
        return self.tokenizer(prompt, return_tensors="pt")

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        """Greedy (temperature 0) or sampled completion."""
        import torch

        inputs = self._encode(messages)
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        if self.tokenizer.pad_token_id is None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return str(self.tokenizer.decode(new_tokens, skip_special_tokens=True)).strip()

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> Iterator[str]:
        """Token pieces as they are generated."""
        from transformers import TextIteratorStreamer

        inputs = self._encode(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": temperature > 0,
            "streamer": streamer,
        }
        if self.tokenizer.pad_token_id is None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        worker = threading.Thread(target=self.model.generate, kwargs={**inputs, **kwargs}, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
