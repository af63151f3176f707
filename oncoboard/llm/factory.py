"""Choose and build the configured language-model backend."""

from __future__ import annotations

from oncoboard.config import Settings
from oncoboard.llm.base import LanguageModel, LLMError, NoModel


def build_llm(settings: Settings) -> LanguageModel:
    """The backend named by ``settings.llm_backend``."""
    if settings.llm_backend == "none":
        return NoModel()
    if settings.llm_backend == "transformers":
        from oncoboard.llm.convert import ensure_default_model
        from oncoboard.llm.transformers_backend import TransformersModel

        model_dir = settings.llm_model or str(ensure_default_model(settings.data_dir))
        return TransformersModel(model_dir, settings.llm_adapter)
    if settings.llm_backend == "openai":
        from oncoboard.llm.openai_backend import OpenAIChatModel

        if not settings.openai_base_url or not settings.llm_model:
            raise LLMError("the openai backend needs ONCOBOARD_OPENAI_BASE_URL and ONCOBOARD_LLM_MODEL")
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIChatModel(
            settings.openai_base_url, settings.llm_model, api_key=key, timeout=settings.llm_timeout_s
        )
    raise LLMError(f"unknown language-model backend {settings.llm_backend!r}")
