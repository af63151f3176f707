"""Planner: three differentiated schemes (evidence first, lowest risk, innovative) from the guideline
tables; the language model, when configured, only adds an explanation marked as model reasoning."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from langgraph.runtime import Runtime

from agents.base import ConsultContext, call_tool, run_settings
from agents.grounding import ungrounded_statements
from graphs.state import ConsultState, Plan
from oncoboard.domain import Findings, Scheme, Tumor
from oncoboard.llm import LanguageModel, LLMError, Message, NoModel
from prompts import render_prompt
from tools.guidelines import draft_schemes

logger = logging.getLogger(__name__)

REASONING_TOKENS = 96


def patient_summary(findings: Findings, tumors: list[Tumor]) -> str:
    """A compact, de-identified summary of the facts the schemes rest on."""
    parts: list[str] = []
    for tumor in tumors:
        stage = tumor.tnm.stage_group or "stage unknown"
        tnm = " ".join(x for x in (tumor.tnm.t, tumor.tnm.n, tumor.tnm.m) if x)
        parts.append(f"{tumor.site} {tumor.histology or ''} {tnm} {stage}".strip())
    parts += [f"{b.name} {b.result}" for b in findings.biomarkers]
    if findings.ecog is not None:
        parts.append(f"ECOG {findings.ecog}")
    parts += [f"{k} {v:g}" for k, v in sorted(findings.labs.items())]
    parts += list(findings.conditions)
    return "; ".join(parts)


def reasoning_prompt(scheme: Scheme, summary: str, lang: str) -> str:
    """The prompt that asks the model to explain ``scheme`` for the patient ``summary``."""
    treatments = ", ".join(
        " ".join(x for x in (t.name, t.dose or "", t.schedule or "") if x) for t in scheme.treatments
    )
    return render_prompt(
        "scheme_reasoning",
        lang,
        patient_summary=summary,
        kind=scheme.kind,
        title=scheme.title,
        treatments=treatments or "none",
        guideline=scheme.guideline_ref or "none",
    )


def _explain(llm: LanguageModel, scheme: Scheme, summary: str, lang: str, runtime: Runtime[ConsultContext]) -> str:
    prompt = reasoning_prompt(scheme, summary, lang)
    started = time.perf_counter()
    replay = runtime.context.replay if runtime is not None and runtime.context is not None else None
    if replay is not None:
        text = replay.model_output("scheme_reasoning")
    else:
        text = llm.generate([Message("user", prompt)], max_tokens=REASONING_TOKENS)
    problems = ungrounded_statements(text, scheme)
    recorder = runtime.context.recorder if runtime is not None and runtime.context is not None else None
    if recorder is not None:
        recorder.record(
            "model_call",
            "scheme_reasoning",
            {"model": llm.describe, "prompt": prompt, "output": text, "rejected": problems},
            (time.perf_counter() - started) * 1000,
        )
    if problems:
        raise LLMError("model explanation failed the rule check: " + "; ".join(problems))
    return text


Drafter = Callable[..., list[Scheme]]


def make_planner(llm: LanguageModel, drafter: Drafter = draft_schemes) -> Callable[..., dict]:
    """The node, bound to its language model and scheme drafter (the guideline tables by default)."""

    def planner(state: ConsultState, runtime: Runtime[ConsultContext]) -> dict:
        """Draft (or, after the checker's findings, revise) the three schemes."""
        findings = state["findings"]
        tumors = list(state["staging"].tumors)
        previous = state.get("plan")
        compliance = state.get("compliance")
        iteration = previous.iteration + 1 if previous is not None else 1
        feedback = list(compliance.findings) if (previous is not None and compliance is not None) else []
        schemes = call_tool(
            runtime,
            "draft_schemes",
            drafter,
            findings=findings,
            tumors=tumors,
            evidence=list(state["literature"].hits),
            feedback=feedback,
            iteration=iteration,
        )
        settings = run_settings(runtime)
        fields: list[str] = []
        replay = runtime.context.replay if runtime is not None and runtime.context is not None else None
        recorded_model = replay is not None and replay.has_model_calls("scheme_reasoning")
        live_model = replay is None and settings.use_llm and not isinstance(llm, NoModel)
        if schemes and (recorded_model or live_model):
            summary = patient_summary(findings, tumors)
            explained: list[Scheme] = []
            for index, scheme in enumerate(schemes):
                try:
                    reasoning = _explain(llm, scheme, summary, state["intake"].language, runtime)
                except LLMError as exc:
                    logger.warning("model reasoning for %s unavailable: %s", scheme.kind, exc)
                    explained.append(scheme)
                    continue
                bases = scheme.bases.model_copy(update={"model_reasoning": reasoning})
                explained.append(scheme.model_copy(update={"bases": bases}))
                fields.append(f"schemes[{index}].bases.model_reasoning")
            schemes = explained
        return {"plan": Plan(schemes=tuple(schemes), iteration=iteration, fields_from_llm=tuple(fields))}

    return planner
