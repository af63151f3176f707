"""The consultation page end to end in Debian's Chromium (Playwright): token, live progress, the
report, the emergency-stop lock released by a chief, chat and what-if. Screenshots go to
test-artifacts/ (not versioned)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.api import create_app
from app.jobs import WorkerSettings
from graphs.service import ConsultService
from oncoboard.auth import add_user
from oncoboard.crypto import Keyring
from oncoboard.llm import NoModel
from oncoboard.storage import Database
from tests.servers import serving

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium (scripts/install_browser.sh)"
)


@pytest.fixture(scope="module")
def base_url(database: Database) -> Iterator[str]:
    """A uvicorn server on 127.0.0.1 (rules-only service, one in-process worker) with the chat page."""
    service = ConsultService(db=database, keyring=Keyring(secrets.token_bytes(32)), llm=NoModel())
    app = create_app(lambda: service, workers=1, worker_settings=WorkerSettings(poll_s=0.05))
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def tokens(database: Database) -> dict[str, str]:
    """One token per role."""
    suffix = uuid.uuid4().hex[:6]
    return {role: add_user(database, f"web-{role}-{suffix}", role)[1] for role in ("resident", "chief")}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian (Playwright's own browser download is not used)."""
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """A fresh page (own session storage) with an English browser locale."""
    context = browser.new_context(base_url=base_url, locale="en-GB", viewport={"width": 1360, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    # The first consultation of a process loads the ICD-10 tables: allow for it.
    playwright_api.expect.set_options(timeout=TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(page: Any, token: str, role: str) -> None:
    page.goto("/")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Use token").click()
    playwright_api.expect(page.locator("#whoami")).to_contain_text(f"({role})")


def _consult(page: Any, example: str) -> None:
    page.get_by_label("Case text").fill((ROOT / "examples" / example).read_text(encoding="utf-8"))
    page.get_by_role("button", name="Consult").click()
    playwright_api.expect(page.locator("#report-status")).to_be_visible()


def test_lung_case_report_chat_and_what_if(page: Any, tokens: dict[str, str]) -> None:
    expect = playwright_api.expect
    _sign_in(page, tokens["resident"], "resident")
    _consult(page, "lung_egfr_en.txt")
    # Every specialist lit up as the job ran, and the report shows what the board needs.
    expect(page.locator("#nodes li.done[data-node=report]")).to_have_count(1)
    expect(page.locator(".tumour .site")).to_have_text("lung (right upper lobe)")
    expect(page.locator(".tumour .stage")).to_have_text("IVB")
    expect(page.locator(".scheme")).to_have_count(3)
    expect(page.locator(".scheme").first).to_contain_text("osimertinib")
    expect(page.locator("table.codes")).to_contain_text("C34.1")
    expect(page.locator("#banner")).to_be_hidden()
    # A resident sees no scheme changes and no decision buttons.
    expect(page.get_by_role("button", name=re.compile("Modify scheme"))).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_be_hidden()
    _shot(page, "lung_report")

    chat = page.get_by_label("Question or what-if change")
    chat.fill("why IVB?")
    chat.press("Enter")
    expect(page.locator(".msg.board").last).to_contain_text("3.4 cm -> T2a")
    chat.fill("what if EGFR is negative?")
    page.get_by_role("button", name="Ask").click()
    changed = page.locator(".msg.board").last.locator("table.diff tr.changed")
    expect(changed.filter(has_text="evidence_priority")).to_contain_text("osimertinib")
    _shot(page, "lung_chat")
    page.get_by_label("Interface language").select_option("de")
    expect(page.locator("#report-title")).to_have_text("Bericht")
    expect(page.get_by_role("heading", name="Therapieschemata")).to_be_visible()
    _shot(page, "lung_report_de")


@pytest.mark.parametrize("example", ["colon_dpd_en.txt"])
def test_locked_case_is_released_by_a_chief(page: Any, tokens: dict[str, str], example: str) -> None:
    expect = playwright_api.expect
    _sign_in(page, tokens["chief"], "chief")
    page.get_by_label("Interface language").select_option("de")
    expect(page.get_by_role("button", name="Konsil starten")).to_be_visible()
    page.get_by_label("Sprache der Oberfläche").select_option("en")
    _consult(page, example)
    # The report is on the page already: a wrong status fails at once, not after the long timeout.
    expect(page.locator("#report-status")).to_have_text("locked", timeout=2000)
    expect(page.locator("#banner")).to_contain_text("Emergency stop")
    expect(page.locator("ul.safety .sev-critical").first).to_be_visible()
    _shot(page, f"{Path(example).stem}_locked")
    # Keyboard only: the reason field, then Tab to Approve and Enter.
    page.get_by_label("Reason (kept in the audit trace)").fill(
        "DPD deficiency reviewed; fluoropyrimidine-free regimen planned"
    )
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Approve")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#banner")).to_contain_text("Released: approved by web-chief")
    expect(page.locator("#report-status")).not_to_have_text("locked")
    expect(page.get_by_role("button", name="Approve")).to_be_hidden()
    _shot(page, f"{Path(example).stem}_released")

    # After the decision a chief may change a scheme, never without a reason.
    innovative = page.locator(".scheme[data-kind=innovative]")
    innovative.get_by_role("button", name=re.compile("^Modify scheme")).click()
    page.get_by_label("Treatments, one per line").fill("carboplatin + pemetrexed | AUC 5 + 500 mg/m2 | every 3 weeks")
    page.get_by_role("button", name="Save change").click()
    expect(innovative).to_contain_text("A reason is required.")
    page.get_by_label("Reason for the change (required)").fill("enrolment into the local phase II trial declined")
    page.get_by_role("button", name="Save change").click()
    expect(innovative.locator(".treatments")).to_contain_text("carboplatin + pemetrexed")
    expect(innovative.locator(".treatments")).to_contain_text("AUC 5 + 500 mg/m2")
    _shot(page, f"{Path(example).stem}_modified")
