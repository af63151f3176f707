"""Chat over recorded consultations: intent answers with their sources, what-if forks of the recorded
run (LangGraph time travel), and the chat endpoints with their authentication."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agents.grounding import unsupported_by_facts
from app.api import create_app
from app.chat.engine import ChatEngine, classify, parse_what_if
from app.chat.router import router as chat_router
from app.wiring import StoreRetriever
from graphs.service import ConsultService
from oncoboard.audit import load_trace
from oncoboard.auth import add_user
from oncoboard.crypto import Keyring
from oncoboard.domain import CaseInput, ConsultReport
from oncoboard.llm import NoModel
from oncoboard.storage import Database

ROOT = Path(__file__).resolve().parents[1]
LUNG_CASE = (ROOT / "examples" / "lung_egfr_en.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def service(database: Database) -> ConsultService:
    """A consult service with the real literature store (so schemes carry literature ids), no model."""
    return ConsultService(
        db=database, keyring=Keyring(secrets.token_bytes(32)), llm=NoModel(), retriever=StoreRetriever(database)
    )


@pytest.fixture(scope="module")
def lung(service: ConsultService) -> ConsultReport:
    """The shipped EGFR-mutant lung example, consulted once."""
    return service.consult(CaseInput(text=LUNG_CASE))


@pytest.fixture(scope="module")
def engine(service: ConsultService) -> ChatEngine:
    """The chat engine over the service."""
    return ChatEngine(service)


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("message", "intent", "scheme_no"),
    [
        ("why IVA?", "stage", None),
        ("Warum Stadium IIIA?", "stage", None),
        ("which trial supports the second scheme?", "scheme_evidence", 2),
        ("Welche Studie stützt das dritte Schema?", "scheme_evidence", 3),
        ("what codes?", "codes", None),
        ("Welche ICD-Kodes?", "codes", None),
        ("what if EGFR is negative?", "what_if", None),
        ("Was wäre, wenn ECOG 2?", "what_if", None),
        ("is the plan safe?", "safety", None),
        ("guideline compliance score?", "compliance", None),
        ("I want the codes", "codes", None),
        ("where is the tumour?", "tumour", None),
        ("please explain the staging", "stage", None),
        ("hello", "summary", None),
    ],
)
def test_classify(message: str, intent: str, scheme_no: int | None) -> None:
    assert classify(message) == (intent, scheme_no)


def test_parse_what_if_reads_changes_with_the_case_extractor() -> None:
    egfr = parse_what_if("what if EGFR is negative?", "en")
    assert egfr is not None and [(b.name, b.status) for b in egfr.biomarkers] == [("EGFR", "negative")]
    ecog = parse_what_if("was wäre wenn ECOG 2?", "de")
    assert ecog is not None and ecog.ecog == 2 and not ecog.biomarkers
    crcl = parse_what_if("what if creatinine clearance 25?", "en")
    assert crcl is not None and crcl.labs == (("creatinine_clearance_ml_min", 25.0),)
    assert parse_what_if("why IVA?", "en") is None
    nothing = parse_what_if("what if tomorrow?", "en")
    assert nothing is not None and nothing.empty


# ---------------------------------------------------------------- answers on a real consultation


def test_stage_answer_gives_the_rationale_lines_and_the_trace_event(
    engine: ChatEngine, lung: ConsultReport, service: ConsultService
) -> None:
    tnm = lung.tumors[0].tnm
    reply = engine.ask(lung.case_id, f"why {tnm.stage_group}?")
    assert reply.intent == "stage"
    assert reply.answer.splitlines()[0] == f"lung: c{tnm.t} {tnm.n} {tnm.m}, stage {tnm.stage_group}."
    assert "- 3.4 cm -> T2a (lung: >3 to <=4 cm)" in reply.answer
    for line in tnm.rationale:
        assert f"- {line}" in reply.answer
    refs = {s.ref for s in reply.sources}
    assert "tumors[0].tnm.rationale" in refs
    events = {f"{ev.trace_id}#{ev.seq}": ev for ev in load_trace(service.db, service.keyring, str(lung.trace_id))}
    cited = [events[r] for r in refs if r in events]
    assert {(ev.kind, ev.name) for ev in cited} == {("tool_call", "stage_tumor"), ("node_end", "tnm_stager")}


def test_second_scheme_literature_lists_ids_and_titles(engine: ChatEngine, lung: ConsultReport) -> None:
    reply = engine.ask(lung.case_id, "which trial supports the second scheme?")
    scheme = lung.schemes[1]
    assert reply.intent == "scheme_evidence"
    assert reply.answer.startswith(f"Scheme 2 (lowest_risk): {scheme.title}")
    assert scheme.bases.literature, "the lowest-risk scheme should rest on literature"
    assert "flaura-2018 — Osimertinib versus first-generation EGFR inhibitors" in reply.answer
    assert {s.ref for s in reply.sources if s.kind == "evidence"} == set(scheme.bases.literature)


def test_codes_answer_in_english_and_german(engine: ChatEngine, lung: ConsultReport) -> None:
    reply = engine.ask(lung.case_id, "what codes?")
    assert reply.answer.splitlines()[0] == "ICD-10 codes:"
    assert "- C34.1 [primary] Malignant neoplasm: Upper lobe, bronchus or lung" in reply.answer
    assert "icd10" in {s.ref for s in reply.sources}
    german = engine.ask(lung.case_id, "Welche ICD-Kodes?", lang="de")
    assert german.language == "de" and german.answer.splitlines()[0] == "ICD-10-Kodes:"


def test_biomarker_question_names_only_the_asked_marker(engine: ChatEngine, lung: ConsultReport) -> None:
    reply = engine.ask(lung.case_id, "what is the PD-L1?")
    assert reply.facts == ["Biomarkers:", "- PD-L1: TPS 30% (positive)"]


def test_what_if_egfr_negative_forks_the_run_and_drops_osimertinib(
    engine: ChatEngine, lung: ConsultReport, service: ConsultService
) -> None:
    assert "osimertinib" in lung.schemes[0].treatments[0].drugs
    history_before = _checkpoints(engine, str(lung.trace_id))
    reply = engine.ask(lung.case_id, "what if EGFR is negative?")
    assert reply.intent == "what_if" and reply.diff is not None
    assert reply.diff.change == "EGFR negative"
    rows = {row.field: row for row in reply.diff.rows}
    first = rows["schemes.evidence_priority"]
    assert "osimertinib" in first.before and "osimertinib" not in first.after and first.changed
    assert not any("osimertinib" in d for t in reply.diff.report.schemes[0].treatments for d in t.drugs)
    assert f"- {first.label}: {first.before} -> {first.after}" in reply.answer
    # The recorded report and its thread are untouched: the fork ran on a thread of its own.
    assert service.get_report(lung.case_id) == lung
    assert _checkpoints(engine, str(lung.trace_id)) == history_before
    assert reply.sources[0].ref.startswith(f"{lung.trace_id}@")


def test_what_if_in_german_and_lab_change(engine: ChatEngine, lung: ConsultReport) -> None:
    ecog = engine.ask(lung.case_id, "was wäre wenn ECOG 2?")
    assert ecog.diff is not None and ecog.diff.change == "ECOG 2"
    assert ecog.language == "en"  # the case's language, unless asked otherwise
    crcl = engine.ask(lung.case_id, "what if creatinine clearance 25?", lang="de")
    assert crcl.diff is not None and crcl.diff.change == "creatinine_clearance_ml_min 25"
    assert crcl.answer.startswith("Was wäre wenn creatinine_clearance_ml_min 25:")
    assert [row.field for row in crcl.diff.rows][:3] == ["status", "stage", "icd10"]


def test_unreadable_what_if_asks_for_a_change(engine: ChatEngine, lung: ConsultReport) -> None:
    reply = engine.ask(lung.case_id, "what if tomorrow?")
    assert reply.diff is None and reply.answer.startswith("I could not read a change from that.")


def test_a_configured_model_only_phrases_and_the_sources_stay(
    service: ConsultService, lung: ConsultReport, tiny_model_dir: Path
) -> None:
    from oncoboard.llm.transformers_backend import TransformersModel

    with_model = ConsultService(
        db=service.db, keyring=service.keyring, llm=TransformersModel(tiny_model_dir, threads=1)
    )
    phrased = ChatEngine(with_model).ask(lung.case_id, "what is the PD-L1?")
    plain = ChatEngine(with_model, use_llm=False).ask(lung.case_id, "what is the PD-L1?")
    assert plain.phrased_by == "rules"
    # The tiny model's text is shown only when it adds no drug, substance or number; else the facts are.
    if phrased.phrased_by == "rules":
        assert phrased.answer == plain.answer
    else:
        assert phrased.phrased_by.startswith("transformers/")
        assert unsupported_by_facts(phrased.answer, plain.answer + "\nwhat is the PD-L1?") == []
    assert phrased.facts == plain.facts == ["Biomarkers:", "- PD-L1: TPS 30% (positive)"]
    assert phrased.sources == plain.sources and phrased.sources
    assert plain.answer == "Biomarkers:\n- PD-L1: TPS 30% (positive)"


def _checkpoints(engine: ChatEngine, thread_id: str) -> list[str]:
    with engine._graph() as (graph, _):
        return [
            s.config["configurable"]["checkpoint_id"]
            for s in graph.get_state_history({"configurable": {"thread_id": thread_id}})
        ]


# ---------------------------------------------------------------- router


def _app(service: ConsultService) -> FastAPI:
    app = create_app(lambda: service)
    if not any(getattr(r, "path", None) == "/v1/consultations/{case_id}/chat" for r in app.routes):
        app.include_router(chat_router)
    return app


@pytest.fixture(scope="module")
def client(service: ConsultService) -> Iterator[TestClient]:
    """A test client on the API with the chat router."""
    with TestClient(_app(service)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def resident(database: Database) -> str:
    """A resident's token (the lowest role may chat)."""
    return add_user(database, f"chat-resident-{uuid.uuid4().hex[:6]}", "resident")[1]


def test_page_and_assets_are_served_without_outside_resources(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="case-form"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for name in ("app.js", "app.css", "i18n.json"):
        assert client.get(f"/chat/static/{name}").status_code == 200
    assert client.get("/chat/static/index.html").status_code == 404
    assert client.get("/chat/static/..%2Fengine.py").status_code == 404


def test_chat_endpoint_needs_a_token_and_answers_with_sources(
    client: TestClient, resident: str, lung: ConsultReport
) -> None:
    path = f"/v1/consultations/{lung.case_id}/chat"
    assert client.post(path, json={"message": "what codes?"}).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.post(path, json={"message": "what codes?"}, headers=bad).status_code == 401
    auth = {"Authorization": f"Bearer {resident}"}
    assert client.get("/v1/chat/me", headers=auth).json()["role"] == "resident"
    reply = client.post(path, json={"message": "what codes?"}, headers=auth)
    assert reply.status_code == 200
    body = reply.json()
    assert body["intent"] == "codes" and "C34.1" in body["answer"] and body["diff"] is None
    assert {"kind": "report", "ref": "icd10", "label": "report: icd10"} in body["sources"]
    assert client.post(path, json={"message": ""}, headers=auth).status_code == 422
    missing = client.post("/v1/consultations/P-nothing-here/chat", json={"message": "x"}, headers=auth)
    assert missing.status_code == 404


def test_chat_endpoint_what_if_returns_the_diff(client: TestClient, resident: str, lung: ConsultReport) -> None:
    reply = client.post(
        f"/v1/consultations/{lung.case_id}/chat",
        json={"message": "what if EGFR is negative?", "lang": "de"},
        headers={"Authorization": f"Bearer {resident}"},
    )
    assert reply.status_code == 200
    diff = reply.json()["diff"]
    assert diff["method"] == "checkpoint_fork"
    row = next(r for r in diff["rows"] if r["field"] == "schemes.evidence_priority")
    assert row["label"] == "Schema evidence_priority" and row["changed"] is True


# ---------------------------------------------------------------- terminal


def test_terminal_chat_opens_a_recorded_case_and_quits(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from app.cli_chat import register
    from app.wiring import build_service, open_keyring
    from oncoboard.config import get_settings

    monkeypatch.setenv("ONCOBOARD_DATABASE_URL", database.url)
    monkeypatch.setenv("ONCOBOARD_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    build_service.cache_clear()
    try:
        recorded = ConsultService(db=database, keyring=open_keyring(), llm=NoModel()).consult(CaseInput(text=LUNG_CASE))
        cli = typer.Typer()
        register(cli)
        runner = CliRunner()
        result = runner.invoke(
            cli, ["--case-id", recorded.case_id, "--no-llm"], input="what codes?\n\nquit\nnever asked\n"
        )
        assert result.exit_code == 0, result.output
        assert f"case {recorded.case_id}" in result.output
        assert "- C34.1 [primary]" in result.output
        assert "sources:" in result.output and "never asked" not in result.output.split("quit")[-1]
        missing = runner.invoke(cli, ["--case-id", "P-nothing-here", "--no-llm"], input="quit\n")
        assert missing.exit_code == 2 and "no report for case P-nothing-here" in missing.output
        both = runner.invoke(cli, ["case.txt", "--case-id", "x"])
        assert both.exit_code == 2
    finally:
        get_settings.cache_clear()
        build_service.cache_clear()


def test_service_warm_up_indexes_the_store_before_the_first_question(service: ConsultService) -> None:
    from app.wiring import warm_service

    timings = warm_service(service)
    assert timings is not None and timings["passages"] >= 150  # the shipped evidence cards at least
    rules_only = ConsultService(db=service.db, keyring=service.keyring, llm=NoModel())
    assert warm_service(rules_only) is None
