"""Build the bilingual fine-tuning instruction set.

Entity tagging comes from the NCBI-Disease and BC5CDR training splits (never their dev splits,
which evaluation reads). Oncology items (stated TNM, primary-tumour extraction, ICD-10 of the
primary) are template sentences whose answers come from the project's rule engines; an item is
kept only when the engine reads back exactly the TNM the template wrote, so a wrong answer never
enters training. The German set uses German wording on German sentences.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from oncoboard.knowledge import knowledge_path
from oncoboard.llm.instructions import (
    CHEMICAL_TYPES,
    DISEASE_TYPES,
    TEMPLATES_TABLE,
    InstructionItem,
    InstructionManifest,
    Lang,
    TemplateSentence,
    make_item,
    parse_pubtator,
    pubtator_instructions,
    render_sentences,
    split_holdout,
    template_ner_items,
    templates,
    wording,
    write_instruction_set,
)

logger = logging.getLogger(__name__)

ONCOLOGY_TASKS = ("tnm", "extraction", "icd10")


def oncology_items(sentences: list[TemplateSentence], *, table: dict[str, Any] | None = None) -> list[InstructionItem]:
    """TNM, extraction and ICD-10 items for template sentences, answers from the rule engines."""
    from tools.extraction import extract_findings
    from tools.icd10 import code_case
    from tools.tnm import parse_tnm

    table = table if table is not None else templates()
    items: list[InstructionItem] = []
    skipped = 0
    for s in sentences:
        parsed = parse_tnm(s.text)
        if (parsed.prefix, parsed.t, parsed.n, parsed.m) != (s.prefix, s.t, s.n, s.m):
            skipped += 1
            continue
        findings = extract_findings(s.text, s.lang)
        task_answers: dict[str, Any] = {"tnm": {"prefix": parsed.prefix, "t": parsed.t, "n": parsed.n, "m": parsed.m}}
        if findings.tumors and findings.tumors[0].histology:
            tumour = findings.tumors[0]
            task_answers["extraction"] = {
                "site": tumour.site,
                "histology": tumour.histology,
                "laterality": tumour.laterality,
            }
            primary = [c.code for c in code_case(findings, with_cm=False) if c.role == "primary"]
            if len(primary) == 1:
                task_answers["icd10"] = {"code": primary[0]}
        for task, answer in task_answers.items():
            items.append(
                make_item(
                    item_id=f"{s.id}:{task}",
                    task=task,
                    lang=s.lang,
                    source="templates",
                    instruction=wording(task, s.lang, table),
                    text=s.text,
                    answer=answer,
                )
            )
    if skipped:
        logger.info("%d template sentences skipped: the TNM parser did not read back their TNM", skipped)
    return items


def build_instruction_set(
    out_dir: Path,
    *,
    ncbi: Path | None,
    bc5cdr: Path | None,
    german_max: int = 300,
    english_oncology: int = 300,
    ncbi_max: int = 700,
    bc5cdr_max: int = 300,
    holdout_fraction: float = 0.15,
    max_heldout_per_group: int = 40,
    template_heldout_sentences: int = 50,
    seed: int = 0,
) -> InstructionManifest:
    """Build and write the instruction set (``train.jsonl``, ``train_no_de.jsonl``, ``heldout.jsonl``).

    ``german_max`` caps the German training items (all tasks together) and ``english_oncology``
    the English template items; ``template_heldout_sentences`` more sentences per language are
    rendered so that about ``holdout_fraction`` of them can be held out. ``train_no_de.jsonl`` is
    the training set without the German items, for measuring what they add.
    """
    if german_max < 0:
        raise ValueError("german_max must be >= 0")
    table = templates()
    sources: dict[str, Path] = {"templates": knowledge_path(TEMPLATES_TABLE)}
    items: list[InstructionItem] = []
    if ncbi is not None:
        docs = parse_pubtator(ncbi.read_text(encoding="utf-8"))
        sources["ncbi_disease"] = ncbi
        items += pubtator_instructions(
            docs,
            task="ner_disease",
            types=DISEASE_TYPES,
            source="ncbi_disease",
            max_items=ncbi_max,
            seed=seed,
            table=table,
        )
    if bc5cdr is not None:
        docs = parse_pubtator(bc5cdr.read_text(encoding="utf-8"))
        sources["bc5cdr"] = bc5cdr
        half = bc5cdr_max // 2
        items += pubtator_instructions(
            docs, task="ner_disease", types=DISEASE_TYPES, source="bc5cdr", max_items=half, seed=seed, table=table
        )
        items += pubtator_instructions(
            docs,
            task="ner_chemical",
            types=CHEMICAL_TYPES,
            source="bc5cdr",
            max_items=bc5cdr_max - half,
            seed=seed,
            table=table,
        )
    # Sentences are rendered beyond the training caps so the held-out share of each language is
    # large enough to measure; the caps then apply to what remains for training.
    items += _template_items("en", english_oncology // 4 + template_heldout_sentences, seed=seed, table=table)
    if german_max:
        items += _template_items("de", german_max // 4 + template_heldout_sentences, seed=seed, table=table)
    train, heldout = split_holdout(items, holdout_fraction, seed=seed, max_per_group=max_heldout_per_group)
    train = _cap_templates(train, {"en": english_oncology, "de": german_max})
    train_no_de = [it for it in train if it.lang != "de"]
    return write_instruction_set(
        out_dir,
        train,
        heldout,
        seed=seed,
        holdout_fraction=holdout_fraction,
        sources=sources,
        parameters={
            "german_max": german_max,
            "english_oncology": english_oncology,
            "ncbi_max": ncbi_max,
            "bc5cdr_max": bc5cdr_max,
            "max_heldout_per_group": max_heldout_per_group,
            "template_heldout_sentences": template_heldout_sentences,
        },
        extra_train_sets={"train_no_de": train_no_de},
    )


def _template_items(lang: Lang, sentences: int, *, seed: int, table: dict[str, Any]) -> list[InstructionItem]:
    """Template items in ``lang``: four tasks per sentence (tagging, TNM, extraction, ICD-10)."""
    rendered = render_sentences(lang, sentences, seed=seed, table=table)
    items = template_ner_items(rendered, table=table) + oncology_items(rendered, table=table)
    items.sort(key=lambda it: (int(it.id.split(":")[2]), it.task))
    return items


def _cap_templates(items: list[InstructionItem], caps: dict[str, int]) -> list[InstructionItem]:
    """Keep at most ``caps[lang]`` template items per language, in order; other items untouched."""
    seen: dict[str, int] = {}
    kept: list[InstructionItem] = []
    for item in items:
        if item.source == "templates":
            seen[item.lang] = seen.get(item.lang, 0) + 1
            if seen[item.lang] > caps.get(item.lang, 0):
                continue
        kept.append(item)
    return kept
