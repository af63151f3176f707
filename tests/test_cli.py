"""The command line as a user drives it: exit codes, one-line errors, batch order and resume, replay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.subcommands import register
from oncoboard.storage import Database

ROOT = Path(__file__).resolve().parents[1]
register(app)


@pytest.fixture(scope="module")
def cli_env(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Settings pointing the CLI at the test database and a private data directory."""
    from app.wiring import build_service
    from oncoboard.config import get_settings

    env = {"ONCOBOARD_DATABASE_URL": database.url, "ONCOBOARD_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    get_settings.cache_clear()
    build_service.cache_clear()
    yield env
    mp.undo()
    get_settings.cache_clear()
    build_service.cache_clear()


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_schema_and_version() -> None:
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "ConsultReport"
    code, out, _ = run("version")
    assert code == 0 and out.strip()


def test_consult_json(cli_env: dict[str, str]) -> None:
    code, out, _ = run("consult", str(ROOT / "examples/rektum_de.txt"), "--json", "--no-llm")
    assert code == 0
    report = json.loads(out)
    assert report["language"] == "de" and report["tumors"][0]["site"] == "colorectal"


def test_consult_from_stdin_human_readable(cli_env: dict[str, str]) -> None:
    code, out, _ = run("consult", "-", "--no-llm", stdin=(ROOT / "examples/non_oncology_en.txt").read_text())
    assert code == 0 and "No oncology diagnosis" in out


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"\xc3\x28 invalid utf8", "UTF-8"),
        (b'{"text": ', "invalid JSON"),
        (b'{"text": "x", "structured": {"age": -3}}', "structured.age"),
    ],
)
def test_bad_single_input_exits_2_with_one_line(
    cli_env: dict[str, str], tmp_path: Path, content: bytes, reason: str
) -> None:
    case = tmp_path / "case.txt"
    case.write_bytes(content)
    code, _, err = run("consult", str(case), "--no-llm")
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and reason in lines[0]


def test_missing_file_and_bad_lang(cli_env: dict[str, str]) -> None:
    assert run("consult", "/nonexistent/case.txt")[0] == 2
    assert run("consult", str(ROOT / "examples/rektum_de.txt"), "--lang", "fr")[0] == 2


def test_emergency_stop_exits_3_with_a_locked_report(cli_env: dict[str, str]) -> None:
    code, out, err = run("consult", str(ROOT / "examples/colon_dpd_en.txt"), "--json", "--no-llm")
    assert code == 3 and "emergency stop" in err
    assert json.loads(out)["status"] == "locked"


def test_batch_keeps_order_rejects_bad_lines_and_resumes(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    code, _, _ = run("consult", "--batch", str(ROOT / "examples/batch.jsonl"), "--out", str(out), "--no-llm")
    assert code == 0
    reports = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in reports][2:4] == ["rejected", "rejected"]
    assert "invalid JSON" in reports[2]["error"] and "empty" in reports[3]["error"]
    assert reports[0]["tumors"][0]["site"] == "lung" and reports[1]["tumors"][0]["site"] == "prostate"
    assert reports[4]["tumors"][0]["site"] == "pancreas"
    # An interruption that left two whole lines and a torn third: --resume redoes only the rest.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])
    code, _, _ = run(
        "consult", "--batch", str(ROOT / "examples/batch.jsonl"), "--out", str(out), "--no-llm", "--resume"
    )
    assert code == 0
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(resumed) == 5
    assert [r["case_id"] for r in resumed[:2]] == [r["case_id"] for r in reports[:2]]
    assert [r["status"] for r in resumed] == [r["status"] for r in reports]


def test_replay_and_verify_detects_tampering(cli_env: dict[str, str], database: Database) -> None:
    code, out, _ = run("consult", str(ROOT / "examples/rektum_de.txt"), "--json", "--no-llm")
    trace_id = json.loads(out)["trace_id"]
    code, out, _ = run("replay", trace_id, "--verify")
    assert code == 0 and "intact" in out
    code, out, _ = run("replay", trace_id, "--json")
    kinds = [json.loads(line)["name"] for line in out.splitlines()]
    assert "intake" in kinds and "report" in kinds
    with database.transaction() as conn:
        conn.execute("UPDATE trace_events SET name = 'forged' WHERE trace_id = %s AND seq = 3", (trace_id,))
    code, _, err = run("replay", trace_id, "--verify")
    assert code == 1 and "tampered" in err
    assert run("replay", "tr-does-not-exist")[0] == 2


def test_deid_json(tmp_path: Path) -> None:
    letter = tmp_path / "letter.txt"
    letter.write_text("Patientin Erika Mustermann, geb. 12.05.1958, Fallnummer 2026-118734. pT3 pN1 M0.")
    code, out, _ = run("deid", str(letter), "--json")
    data = json.loads(out)
    assert code == 0 and "Mustermann" not in data["text"] and "pT3 pN1 M0" in data["text"]
    for span in data["spans"]:
        assert letter.read_text()[span["start"] : span["end"]] == span["surface"]


def test_eval_explain_scores_the_model_on_dev_cases(cli_env: dict[str, str], tiny_model_dir: Path) -> None:
    code, out, err = run("eval", "explain", "--model", str(tiny_model_dir), "--cases", "1")
    assert code == 0, err
    result = json.loads(out)
    assert result["cases"] == 1 and result["explanations"] >= 1
    base = result["models"]["base"]
    assert 0 <= base["accepted"] <= result["explanations"] and base["model"].startswith("transformers/")
    code, _, err = run("eval", "explain", "--model", str(tiny_model_dir), "--adapter", "no-equals-sign")
    assert code == 2 and "NAME=PATH" in err
