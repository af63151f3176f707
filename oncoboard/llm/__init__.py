"""Language-model backends: ``none``, local ``transformers`` (+ LoRA), ``openai``-compatible (vLLM)."""

from oncoboard.llm.base import LanguageModel, LLMError, Message, NoModel, generate_structured

__all__ = ["LLMError", "LanguageModel", "Message", "NoModel", "generate_structured"]
