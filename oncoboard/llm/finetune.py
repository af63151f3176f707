"""LoRA fine-tuning of a local causal LM on chat-formatted instruction JSONL.

Each JSONL line holds ``messages`` (user turns, then the assistant's answer); the loss covers the
answer and its end-of-turn token only, so the model learns to answer, not to repeat prompts. The
prompt is rendered with the tokenizer's chat template exactly as the serving backend renders it.

Runs are resumable: every ``save_every`` steps a checkpoint (adapter weights, optimizer,
scheduler, RNG state, step) is written under ``out/checkpoints/step-N``; ``resume=True`` picks up
the newest one. The batch order is a pure function of the seed and the step, so a resumed run sees
the same batches as an uninterrupted one. The final adapter and ``manifest.json`` go to ``out``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

MAX_THREADS = 2
CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"
_STATE_FILE = "trainer_state.pt"


class FinetuneError(RuntimeError):
    """The fine-tuning run cannot start or continue (bad data, missing model, mismatched checkpoint)."""


class LoraSettings(BaseModel):
    """Hyper-parameters of one LoRA run."""

    rank: int = Field(default=8, ge=1, description="LoRA rank r.")
    alpha: int | None = Field(default=None, description="LoRA alpha; 2 * rank when unset.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        description="Linear layers that get adapters; attention projections keep the adapter small.",
    )
    top_layers: int | None = Field(
        default=None,
        ge=1,
        description="Adapt only the top N decoder layers; back-propagation then stops below them (faster on CPU).",
    )
    learning_rate: float = Field(default=2e-4, gt=0.0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    warmup_steps: int = Field(default=10, ge=0, description="Linear warm-up steps before linear decay.")
    batch_size: int = Field(default=4, ge=1, description="Sequences per optimizer step.")
    epochs: float = Field(default=1.0, gt=0.0, description="Passes over the data when steps is unset.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps; overrides epochs.")
    max_length: int = Field(
        default=256, ge=16, description="Tokens per sequence; longer prompts are cut from the left."
    )
    seed: int = Field(default=0, description="Seed for initialisation, dropout and batch order.")
    save_every: int = Field(default=50, ge=1, description="Steps between resumable checkpoints.")
    keep_checkpoints: int = Field(default=2, ge=1, description="Newest checkpoints kept on disk.")
    eval_every: int | None = Field(default=None, ge=1, description="Steps between evaluation-loss passes.")
    threads: int = Field(default=MAX_THREADS, ge=1, description="torch threads, capped at 2 on shared machines.")
    grad_clip: float = Field(default=1.0, gt=0.0, description="Gradient-norm clip.")


@dataclass(frozen=True)
class ProgressEvent:
    """Reported after every optimizer step (and once at start with ``step`` = resume point)."""

    step: int
    total_steps: int
    loss: float | None
    learning_rate: float
    elapsed_s: float
    eval_loss: float | None = None


class FinetuneResult(BaseModel):
    """What a finished run wrote and measured (the content of ``manifest.json``)."""

    schema_version: str = "1"
    adapter_dir: str
    base_model: str
    base_model_config_sha256: str
    data: str
    data_sha256: str
    data_items: int
    eval_data: str | None = None
    eval_data_sha256: str | None = None
    eval_items: int = 0
    command: list[str]
    settings: LoraSettings
    total_steps: int
    steps_run: int = Field(description="Steps run in this invocation (less than total when resumed).")
    resumed_from_step: int | None = None
    train_loss: float | None = Field(description="Mean loss over the last 20 steps run.")
    train_loss_first: float | None = Field(default=None, description="Mean loss over the first 20 steps run.")
    eval_loss: float | None = None
    eval_loss_base: float | None = Field(default=None, description="Eval loss of the base model (adapter off).")
    wall_time_s: float
    steps_per_s: float
    trainable_parameters: int
    versions: dict[str, str]


ProgressCallback = Callable[[ProgressEvent], None]


# --------------------------------------------------------------------------- data


def read_chat_jsonl(path: Path) -> list[list[dict[str, str]]]:
    """Conversations from a JSONL file of objects with ``messages`` whose last turn is the assistant's."""
    if not path.is_file():
        raise FinetuneError(f"data file not found: {path}")
    convos: list[list[dict[str, str]]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FinetuneError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            messages = obj.get("messages") if isinstance(obj, dict) else None
            if (
                not isinstance(messages, list)
                or len(messages) < 2
                or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages)
                or messages[-1]["role"] != "assistant"
            ):
                raise FinetuneError(f"{path}:{number}: needs 'messages' ending with an assistant turn")
            convos.append([{"role": str(m["role"]), "content": str(m["content"])} for m in messages])
    if not convos:
        raise FinetuneError(f"{path}: no examples")
    return convos


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text the serving backend builds for ``messages`` (chat template or a plain fallback)."""
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"


def encode_example(tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt) for one conversation; the prompt is cut from the left."""
    prompt_ids: list[int] = tokenizer(render_prompt(tokenizer, messages[:-1]))["input_ids"]
    answer_text = messages[-1]["content"] + (tokenizer.eos_token or "")
    answer_ids: list[int] = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids[: max_length - 1]
    room = max_length - len(answer_ids)
    prompt_ids = prompt_ids[-room:] if room > 0 else []
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_indices(n_items: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Item indices of optimizer step ``step`` (0-based): epoch-wise seeded permutations, wrapping around."""
    start = step * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n_items)
        order = list(range(n_items))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        take = min(batch_size - len(out), n_items - offset)
        out.extend(order[offset : offset + take])
    return out


# --------------------------------------------------------------------------- training


def _collate(examples: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for a batch."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then linear decay to 10 % of the peak."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return max(0.1, 1.0 - 0.9 * (step - warmup) / span)


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``out_dir/checkpoints``."""
    root = out_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / _STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def evaluation_loss(model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> float:
    """Token-weighted mean loss over the answer tokens of ``encoded``."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = _collate(encoded[start : start + batch_size], pad_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            shift_logits = logits[:, :-1, :].float()
            shift_labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)),
                shift_labels.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            total += float(loss)
            count += int((shift_labels != -100).sum())
    if was_training:
        model.train()
    return total / max(1, count)


def finetune(
    base_model: Path,
    data: Path,
    out_dir: Path,
    settings: LoraSettings | None = None,
    *,
    eval_data: Path | None = None,
    resume: bool = False,
    command: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    base_eval_loss: bool = True,
) -> FinetuneResult:
    """Train a LoRA adapter on ``data`` over ``base_model`` and write it with ``manifest.json`` to ``out_dir``.

    With ``resume`` the newest checkpoint in ``out_dir`` is loaded and training continues from its
    step (same data and settings required: the checkpoint records the data hash and is refused on
    a mismatch). Returns the manifest.
    """
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = settings or LoraSettings()
    started = time.perf_counter()
    torch.set_num_threads(min(settings.threads, MAX_THREADS))
    if not (base_model / "config.json").is_file():
        raise FinetuneError(f"not a model directory (no config.json): {base_model}")
    convos = read_chat_jsonl(data)
    data_hash = file_sha256(data)
    eval_convos = read_chat_jsonl(eval_data) if eval_data is not None else []

    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise FinetuneError("the tokenizer has neither a pad nor an end-of-sequence token")
    encoded = [encode_example(tokenizer, c, settings.max_length) for c in convos]
    eval_encoded = [encode_example(tokenizer, c, settings.max_length) for c in eval_convos]

    model: Any = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True, dtype=torch.float32)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in settings.target_modules if t in present]
    if not targets:
        raise FinetuneError(f"none of the target modules {settings.target_modules} exist in {base_model}")
    layers: list[int] | None = None
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    if settings.top_layers is not None and n_layers:
        layers = list(range(max(0, n_layers - settings.top_layers), n_layers))
    model.config.use_cache = False
    lora = LoraConfig(
        r=settings.rank,
        layers_to_transform=layers,
        lora_alpha=settings.alpha or 2 * settings.rank,
        lora_dropout=settings.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
    )
    steps_per_epoch = math.ceil(len(encoded) / settings.batch_size)
    total_steps = settings.steps or max(1, math.ceil(steps_per_epoch * settings.epochs))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, total_steps, settings.warmup_steps)
    )

    start_step = 0
    resumed_from: int | None = None
    if resume:
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None:
            logger.info("no checkpoint in %s; starting from step 0", out_dir)
        else:
            state = torch.load(ckpt / _STATE_FILE, weights_only=False)
            if state["data_sha256"] != data_hash or state["total_steps"] != total_steps:
                raise FinetuneError(f"checkpoint {ckpt} was made with other data or another step count")
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
            start_step = resumed_from = int(state["step"])
            logger.info("resumed from %s (step %d of %d)", ckpt, start_step, total_steps)

    base_loss: float | None = None
    if eval_encoded and base_eval_loss:
        with model.disable_adapter():
            base_loss = evaluation_loss(model, eval_encoded, pad_id, settings.batch_size)
    losses: list[float] = []
    eval_loss: float | None = None
    loop_started = time.perf_counter()
    if progress:
        progress(ProgressEvent(start_step, total_steps, None, float(scheduler.get_last_lr()[0]), 0.0, base_loss))
    model.train()
    for step in range(start_step, total_steps):
        batch = _collate(
            [encoded[i] for i in batch_indices(len(encoded), settings.batch_size, step, settings.seed)], pad_id
        )
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], settings.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        done = step + 1
        step_eval: float | None = None
        if eval_encoded and settings.eval_every and done % settings.eval_every == 0 and done < total_steps:
            step_eval = evaluation_loss(model, eval_encoded, pad_id, settings.batch_size)
        if done % settings.save_every == 0 and done < total_steps:
            _save_checkpoint(
                model, optimizer, scheduler, out_dir, done, total_steps, data_hash, settings.keep_checkpoints
            )
        if progress:
            progress(
                ProgressEvent(
                    done,
                    total_steps,
                    losses[-1],
                    float(scheduler.get_last_lr()[0]),
                    time.perf_counter() - started,
                    step_eval,
                )
            )
    loop_time = time.perf_counter() - loop_started
    if eval_encoded:
        eval_loss = evaluation_loss(model, eval_encoded, pad_id, settings.batch_size)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    steps_run = total_steps - start_step
    result = FinetuneResult(
        adapter_dir=str(out_dir),
        base_model=str(base_model),
        base_model_config_sha256=file_sha256(base_model / "config.json"),
        data=str(data),
        data_sha256=data_hash,
        data_items=len(encoded),
        eval_data=str(eval_data) if eval_data else None,
        eval_data_sha256=file_sha256(eval_data) if eval_data else None,
        eval_items=len(eval_encoded),
        command=list(command) if command is not None else list(sys.argv),
        settings=settings,
        total_steps=total_steps,
        steps_run=steps_run,
        resumed_from_step=resumed_from,
        train_loss=_mean(losses[-20:]),
        train_loss_first=_mean(losses[:20]),
        eval_loss=eval_loss,
        eval_loss_base=base_loss,
        wall_time_s=round(time.perf_counter() - started, 3),
        steps_per_s=round(steps_run / loop_time, 4) if steps_run and loop_time > 0 else 0.0,
        trainable_parameters=trainable,
        versions={"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    )
    (out_dir / MANIFEST).write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    logger.info("adapter written to %s (train loss %s, eval loss %s)", out_dir, result.train_loss, eval_loss)
    return result


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 5) if values else None


def _save_checkpoint(
    model: Any, optimizer: Any, scheduler: Any, out_dir: Path, step: int, total_steps: int, data_hash: str, keep: int
) -> Path:
    """Write a resumable checkpoint atomically (a partial folder renamed when complete)."""
    import torch

    root = out_dir / CHECKPOINT_DIR
    target = root / f"step-{step}"
    partial = root / f".step-{step}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    torch.save(
        {
            "step": step,
            "total_steps": total_steps,
            "data_sha256": data_hash,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        },
        partial / _STATE_FILE,
    )
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    done = sorted((p for p in root.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
    for old in done[:-keep]:
        shutil.rmtree(old)
    logger.info("checkpoint %s", target)
    return target
