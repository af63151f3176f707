"""Process settings (environment, ``ONCOBOARD_*``) and the per-run context."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "xxx"}


class Settings(BaseSettings):
    """Settings of one oncoboard process, read from ``ONCOBOARD_*`` variables or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="ONCOBOARD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".oncoboard"),
        description="Where the embedded Postgres, the embedded graph, converted models and keys live.",
    )
    database_url: str | None = Field(
        default=None,
        description="Postgres URL with pgvector; unset means an embedded server in data_dir/pg.",
    )
    neo4j_uri: str | None = Field(default=None, validation_alias="NEO4J_URI", description="Neo4j bolt URI.")
    neo4j_user: str = Field(default="neo4j", validation_alias="NEO4J_USER", description="Neo4j user.")
    neo4j_password: SecretStr | None = Field(
        default=None, validation_alias="NEO4J_PASSWORD", description="Neo4j password."
    )
    llm_backend: Literal["none", "transformers", "openai"] = Field(
        default="none", description="Which language-model backend the agents call."
    )
    llm_model: str | None = Field(
        default=None, description="Model directory (transformers) or model name (openai)."
    )
    llm_adapter: str | None = Field(
        default=None, description="Optional PEFT LoRA adapter directory or served name."
    )
    openai_base_url: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible endpoint."
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Key for the OpenAI-compatible endpoint."
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one model call.")
    compliance_threshold: int = Field(default=80, ge=0, le=100, description="Qualified guideline score.")
    max_iterations: int = Field(default=3, ge=1, le=10, description="Planner/checker loop bound.")
    max_text_bytes: int = Field(default=1_000_000, gt=0, description="Largest case text accepted (bytes).")
    encryption_key: SecretStr | None = Field(
        default=None, description="Base64 AES-256 key for data at rest; a key file in data_dir otherwise."
    )

    @field_validator("openai_api_key", "encryption_key", "neo4j_password")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("a placeholder secret is not accepted; set a real value or leave it unset")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process settings, read once."""
    return Settings()


@dataclass(frozen=True)
class RunContext:
    """Per-run settings passed to the graph (LangGraph runtime context)."""

    compliance_threshold: int = 80
    max_iterations: int = 3
    tnm_edition: str = "AJCC 8th"
    icd10_edition: str = "ICD-10-WHO-2019"
    retrieval_k: int = 10
    recency_years: int = 3
    use_llm: bool = True
    max_text_bytes: int = 1_000_000
    language: str = "auto"
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> RunContext:
        """A context with the process defaults, overridable per run."""
        base: dict[str, object] = {
            "compliance_threshold": settings.compliance_threshold,
            "max_iterations": settings.max_iterations,
            "max_text_bytes": settings.max_text_bytes,
        }
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]
