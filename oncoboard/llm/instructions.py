"""Instruction sets for fine-tuning: chat-formatted items with JSON answers, a held-out split, a manifest.

An item is one user turn (instruction wording + text) and one assistant turn (the JSON answer).
Entity-tagging items come from PubTator corpora, sentence by sentence ("mark the disease mentions"
-> a JSON list of the mentions in order). Clinical sentences in English and German are assembled
from the seed templates in ``knowledge/instructions/templates.yaml``; the answers for those that
need the project's rule engines are derived outside this module (see ``evaluation.instruction_data``).

Everything here is deterministic given the seed, so a set can be rebuilt and its manifest compared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from oncoboard.knowledge import load_table

logger = logging.getLogger(__name__)

TEMPLATES_TABLE = "instructions/templates.yaml"
Lang = Literal["en", "de"]

# NCBI-Disease splits disease mentions into four classes; all of them are disease mentions.
DISEASE_TYPES = frozenset({"Disease", "SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"})
CHEMICAL_TYPES = frozenset({"Chemical"})


class ChatTurn(BaseModel):
    """One chat message of an instruction item."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class InstructionItem(BaseModel):
    """One training or evaluation example: the conversation whose last turn is the JSON answer."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable identifier: source, document and position.")
    task: str = Field(description="ner_disease, ner_chemical, tnm, extraction or icd10.")
    lang: Lang = Field(description="Language of the instruction wording.")
    source: str = Field(description="Corpus or template table the text comes from.")
    messages: tuple[ChatTurn, ...] = Field(description="User turn(s) then the assistant's answer.")

    @property
    def answer(self) -> str:
        """The expected assistant reply (a JSON document)."""
        return self.messages[-1].content

    @property
    def prompt(self) -> tuple[ChatTurn, ...]:
        """The conversation without the answer, as a model is asked."""
        return self.messages[:-1]


class InstructionManifest(BaseModel):
    """What a built instruction set holds and where it came from."""

    schema_version: str = "1"
    seed: int
    holdout_fraction: float
    counts: dict[str, dict[str, int]] = Field(description="split -> 'task/lang' -> items.")
    totals: dict[str, int] = Field(description="split -> items.")
    sources: dict[str, str] = Field(description="source name -> sha256 of the file read.")
    parameters: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- PubTator


@dataclass(frozen=True)
class Annotation:
    """One mention in a PubTator record; offsets into ``title + ' ' + abstract``."""

    start: int
    end: int
    text: str
    type: str


@dataclass(frozen=True)
class PubtatorDoc:
    """A PubTator title/abstract record with its mentions."""

    pmid: str
    title: str
    abstract: str
    annotations: tuple[Annotation, ...] = ()

    @property
    def text(self) -> str:
        """Title and abstract joined by one blank, the frame the offsets refer to."""
        return f"{self.title} {self.abstract}" if self.abstract else self.title


def parse_pubtator(text: str) -> list[PubtatorDoc]:
    """Parse PubTator records (``PMID|t|``, ``PMID|a|``, tab-separated mention lines; relations ignored)."""
    docs: list[PubtatorDoc] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is not None:
            docs.append(
                PubtatorDoc(current["pmid"], current["title"], current["abstract"], tuple(current["annotations"]))
            )

    for line in text.splitlines():
        if not line.strip():
            continue
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in {"t", "a"} and "\t" not in head[0]:
            pmid, kind, body = head
            if kind == "t":
                flush()
                current = {"pmid": pmid, "title": body, "abstract": "", "annotations": []}
            elif current is not None and current["pmid"] == pmid:
                current["abstract"] = body
            continue
        cols = line.split("\t")
        if current is None or len(cols) < 5 or cols[0] != current["pmid"]:
            continue  # relation lines (PMID CID a b) and stray lines carry no mention
        try:
            start, end = int(cols[1]), int(cols[2])
        except ValueError:
            continue
        current["annotations"].append(Annotation(start, end, cols[3], cols[4]))
    flush()
    return docs


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (a full stop, ! or ? followed by a capital)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def sentence_mentions(doc: PubtatorDoc, types: frozenset[str]) -> list[tuple[str, list[str]]]:
    """Each sentence of ``doc`` with the mentions of ``types`` it holds, in text order.

    A sentence that a mention crosses is left out: its answer could not be stated exactly.
    """
    text = doc.text
    anns = sorted((a for a in doc.annotations if a.type in types), key=lambda a: (a.start, a.end))
    out: list[tuple[str, list[str]]] = []
    spans = sentence_spans(text)
    for s, e in spans:
        crossing = any(a.start < e and a.end > s and not (a.start >= s and a.end <= e) for a in anns)
        if crossing:
            continue
        mentions = [text[a.start : a.end] for a in anns if a.start >= s and a.end <= e]
        out.append((text[s:e].strip(), mentions))
    return out


# --------------------------------------------------------------------------- items


def make_item(
    *, item_id: str, task: str, lang: Lang, source: str, instruction: str, text: str, answer: Any
) -> InstructionItem:
    """An item whose user turn is the instruction followed by the text, and whose answer is ``answer`` as JSON."""
    return InstructionItem(
        id=item_id,
        task=task,
        lang=lang,
        source=source,
        messages=(
            ChatTurn(role="user", content=f"{instruction}\n\n{text}"),
            ChatTurn(role="assistant", content=json.dumps(answer, ensure_ascii=False)),
        ),
    )


def templates() -> dict[str, Any]:
    """The seed template table (wording, frames, slot values)."""
    return load_table(TEMPLATES_TABLE)


def wording(task: str, lang: Lang, table: Mapping[str, Any] | None = None) -> str:
    """The instruction wording of ``task`` in ``lang``."""
    table = table if table is not None else templates()
    return str(table["wording"][task][lang])


def pubtator_instructions(
    docs: Sequence[PubtatorDoc],
    *,
    task: str,
    types: frozenset[str],
    source: str,
    lang: Lang = "en",
    max_items: int | None = None,
    empty_ratio: float = 0.2,
    seed: int = 0,
    table: Mapping[str, Any] | None = None,
) -> list[InstructionItem]:
    """Sentence-level tagging items from PubTator records.

    Sentences with mentions are all candidates; sentences without any are kept at ``empty_ratio``
    of the items so the model also learns to answer ``[]``. ``max_items`` caps the result after a
    seeded shuffle.
    """
    instruction = wording(task, lang, table)
    positive: list[InstructionItem] = []
    negative: list[InstructionItem] = []
    for doc in docs:
        for index, (sentence, mentions) in enumerate(sentence_mentions(doc, types)):
            item = make_item(
                item_id=f"{source}:{doc.pmid}:{index}:{task}:{lang}",
                task=task,
                lang=lang,
                source=source,
                instruction=instruction,
                text=sentence,
                answer=mentions,
            )
            (positive if mentions else negative).append(item)
    rng = random.Random(f"{seed}:{source}:{task}:{lang}")
    rng.shuffle(positive)
    rng.shuffle(negative)
    if max_items is not None:
        n_neg = min(len(negative), round(max_items * empty_ratio))
        positive = positive[: max_items - n_neg]
    else:
        n_neg = min(len(negative), round(len(positive) * empty_ratio / max(1e-9, 1 - empty_ratio)))
    items = positive + negative[:n_neg]
    rng.shuffle(items)
    return items


# --------------------------------------------------------------------------- clinical sentences


@dataclass(frozen=True)
class TemplateSentence:
    """A clinical sentence assembled from the seed templates, with what was put into it."""

    id: str
    lang: Lang
    text: str
    tumour: str
    histology: str
    prefix: str
    t: str
    n: str
    m: str
    mentions: tuple[str, ...] = field(default=())


def render_sentences(
    lang: Lang, count: int, *, seed: int = 0, table: Mapping[str, Any] | None = None
) -> list[TemplateSentence]:
    """``count`` distinct clinical sentences in ``lang`` from the seed frames and slot values."""
    table = table if table is not None else templates()
    rng = random.Random(f"{seed}:sentences:{lang}")
    frames: list[str] = list(table["frames"][lang])
    out: list[TemplateSentence] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < count and attempts < count * 20:
        attempts += 1
        frame = rng.choice(frames)
        tumour_row = rng.choice(table["tumours"])
        prefix = rng.choice(table["prefixes"])
        t, n, m = rng.choice(table["t"]), rng.choice(table["n"]), rng.choice(table["m"])
        # M is a clinical or pathological statement of distant spread; it carries no p/c here
        # because pM0 does not exist in the TNM rules.
        tnm = f"{prefix}{t} {prefix}{n} {m}"
        comorbidity = rng.choice(table["comorbidities"][lang])
        slots = {
            "tumour": tumour_row[lang],
            "tnm": tnm,
            "size": _size_text(rng.choice([0.8, 1.5, 2.2, 2.6, 3.4, 4.8, 5.5, 7.1]), lang),
            "age": str(rng.randint(38, 86)),
            "sex": rng.choice(table["sex"][lang]),
            "ecog": str(rng.randint(0, 2)),
            "comorbidity": comorbidity,
        }
        text = frame.format(**slots)
        if text in seen:
            continue
        seen.add(text)
        mentions = [(text.find(tumour_row[lang]), tumour_row[lang])]
        if "{comorbidity}" in frame:
            mentions.append((text.find(comorbidity), comorbidity))
        out.append(
            TemplateSentence(
                id=f"templates:{lang}:{len(out)}",
                lang=lang,
                text=text,
                tumour=tumour_row[lang],
                histology=str(tumour_row[f"histology_{lang}"]),
                prefix=prefix,
                t=t,
                n=n,
                m=m,
                mentions=tuple(surface for _, surface in sorted(mentions)),
            )
        )
    return out


def _size_text(value: float, lang: Lang) -> str:
    """A size as written in the language (German uses the decimal comma)."""
    text = f"{value:.1f}"
    return text.replace(".", ",") if lang == "de" else text


def template_ner_items(
    sentences: Iterable[TemplateSentence], *, table: Mapping[str, Any] | None = None
) -> list[InstructionItem]:
    """Disease-tagging items over template sentences; the mentions are known by construction."""
    table = table if table is not None else templates()
    return [
        make_item(
            item_id=f"{s.id}:ner_disease",
            task="ner_disease",
            lang=s.lang,
            source="templates",
            instruction=wording("ner_disease", s.lang, table),
            text=s.text,
            answer=list(s.mentions),
        )
        for s in sentences
    ]


# --------------------------------------------------------------------------- split and write


def split_holdout(
    items: Sequence[InstructionItem], fraction: float, *, seed: int = 0, max_per_group: int | None = None
) -> tuple[list[InstructionItem], list[InstructionItem]]:
    """Split into (train, held-out), stratified by task and language, deterministic per text.

    An item is held out when a seeded hash of its text (the user turn after the instruction)
    falls under ``fraction``, so every task asked about one sentence lands in the same split and
    no held-out text is seen in training. ``max_per_group`` caps the held-out items of one
    task/language; the surplus is dropped rather than trained on, for the same reason.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    train: list[InstructionItem] = []
    held: list[InstructionItem] = []
    per_group: Counter[tuple[str, str]] = Counter()
    ranked = sorted(items, key=lambda it: _unit_hash(f"{seed}:{item_text(it)}"))
    for item in ranked:
        if _unit_hash(f"{seed}:{item_text(item)}") >= fraction:
            train.append(item)
            continue
        key = (item.task, item.lang)
        if max_per_group is None or per_group[key] < max_per_group:
            per_group[key] += 1
            held.append(item)
    order = {it.id: i for i, it in enumerate(items)}
    train.sort(key=lambda it: order[it.id])
    held.sort(key=lambda it: order[it.id])
    return train, held


def item_text(item: InstructionItem) -> str:
    """The text an item asks about: its first user turn after the instruction wording."""
    return item.messages[0].content.split("\n\n", 1)[-1]


def _unit_hash(key: str) -> float:
    """A stable number in [0, 1) from ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(items: Iterable[InstructionItem]) -> dict[str, int]:
    return dict(sorted(Counter(f"{it.task}/{it.lang}" for it in items).items()))


def write_jsonl(items: Iterable[InstructionItem], path: Path) -> int:
    """Write items as JSON lines (``id, task, lang, source, messages``); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(item.model_dump_json() + "\n")
            n += 1
    return n


def load_instructions(path: Path) -> list[InstructionItem]:
    """Read an instruction JSONL file written by :func:`write_jsonl`."""
    items: list[InstructionItem] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                items.append(InstructionItem.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not an instruction item: {exc}") from exc
    return items


def write_instruction_set(
    out_dir: Path,
    train: Sequence[InstructionItem],
    heldout: Sequence[InstructionItem],
    *,
    seed: int,
    holdout_fraction: float,
    sources: Mapping[str, Path],
    parameters: Mapping[str, Any] | None = None,
    extra_train_sets: Mapping[str, Sequence[InstructionItem]] | None = None,
) -> InstructionManifest:
    """Write ``train.jsonl``, ``heldout.jsonl`` (plus any named extra training sets) and ``manifest.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(train, out_dir / "train.jsonl")
    write_jsonl(heldout, out_dir / "heldout.jsonl")
    counts = {"train": _counts(train), "heldout": _counts(heldout)}
    totals = {"train": len(train), "heldout": len(heldout)}
    for name, items in (extra_train_sets or {}).items():
        write_jsonl(items, out_dir / f"{name}.jsonl")
        counts[name] = _counts(items)
        totals[name] = len(items)
    manifest = InstructionManifest(
        seed=seed,
        holdout_fraction=holdout_fraction,
        counts=counts,
        totals=totals,
        sources={name: file_sha256(path) for name, path in sorted(sources.items())},
        parameters=dict(parameters or {}),
    )
    (out_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    logger.info("instruction set written to %s: %s", out_dir, totals)
    return manifest
