"""Human-readable rendering of reports and traces for the terminal (the CLI owns the console)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from oncoboard.audit import TraceEvent
from oncoboard.domain import ConsultReport

_STATUS_STYLE = {"final": "green", "needs_review": "yellow", "locked": "bold red", "rejected": "red"}


def render_report(report: ConsultReport, console: Console | None = None) -> None:
    """Print a report as a clinician would read it."""
    console = console or Console()
    style = _STATUS_STYLE.get(report.status, "white")
    console.print(
        Panel(
            f"case {report.case_id}  ·  status [{style}]{report.status}[/]  ·  language {report.language}"
            f"  ·  trace {report.trace_id}",
            title="oncoboard consultation",
        )
    )
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}")
        return
    if report.safety.status == "emergency_stop":
        console.print(Panel("EMERGENCY STOP — report locked until a chief physician approves", style="bold red"))
    if not report.oncology:
        console.print("No oncology diagnosis found in this case.")
    for tumor in report.tumors:
        t = tumor.tnm
        tnm = " ".join(f"{t.prefix or ''}{x}" for x in (t.t, t.n, t.m) if x)
        console.print(
            f"[bold]{'Primary' if tumor.primary else 'Tumour'}:[/] "
            + escape(
                f"{tumor.site}{' (' + tumor.subsite + ')' if tumor.subsite else ''}, "
                f"{tumor.histology or 'histology not stated'} — {tnm or 'TNM not determinable'}, "
                f"stage {t.stage_group or 'n/a'}"
                + (f", BCLC {tumor.other_staging['bclc']}" if "bclc" in tumor.other_staging else "")
            )
        )
        for line in t.rationale:
            console.print(f"   · {line}", style="dim", markup=False)
    if report.icd10:
        table = Table("ICD-10", "role", "description", "rule", title="Codes")
        for code in report.icd10:
            table.add_row(
                code.code + (" (CM)" if code.system == "ICD-10-CM" else ""),
                code.role,
                code.description,
                code.rule,
            )
        console.print(table)
    if report.biomarkers:
        console.print(
            "[bold]Biomarkers:[/] " + escape("; ".join(f"{b.name} {b.result} ({b.status})" for b in report.biomarkers))
        )
    for scheme in report.schemes:
        body = [scheme.rationale]
        for tr in scheme.treatments:
            body.append(f"• {tr.name}: {tr.dose or 'dose per guideline'} {tr.schedule or ''}".rstrip())
        if scheme.bases.patient_data:
            body.append("patient data: " + "; ".join(scheme.bases.patient_data))
        if scheme.bases.literature:
            body.append("literature: " + ", ".join(scheme.bases.literature))
        if scheme.bases.model_reasoning:
            body.append("model reasoning: " + scheme.bases.model_reasoning)
        console.print(Panel(escape("\n".join(body)), title=escape(f"{scheme.kind}: {scheme.title}")))
    if report.compliance:
        c = report.compliance
        console.print(
            f"[bold]Guideline compliance:[/] {c.score}/100 ({c.level}, threshold {c.threshold}, "
            f"{c.iterations} iteration(s))"
        )
        for line in c.findings:
            console.print(f"   · {line}", style="dim", markup=False)
    for finding in report.safety.findings:
        colour = {"critical": "red", "warning": "yellow"}.get(finding.severity, "white")
        console.print(
            f"[{colour}]{finding.severity}[/] "
            + escape(f"{finding.drug or ''}: {finding.reason} (basis: {finding.basis})")
        )
    if report.evidence:
        console.print(
            "[bold]Evidence:[/] " + escape("; ".join(f"{e.title} ({e.year}, {e.level})" for e in report.evidence))
        )
    for reason in report.review_reasons:
        console.print(f"[yellow]review:[/] {escape(reason)}")


def render_trace(events: Sequence[TraceEvent], console: Console | None = None) -> None:
    """Print a trace as a table of steps."""
    console = console or Console()
    table = Table("#", "at", "kind", "name", "ms", "summary", title=f"trace {events[0].trace_id if events else ''}")
    for ev in events:
        summary = ", ".join(sorted(ev.payload.keys()))[:60]
        table.add_row(
            str(ev.seq),
            ev.at[11:23],
            ev.kind,
            ev.name,
            f"{ev.duration_ms:.1f}" if ev.duration_ms else "",
            summary,
        )
    console.print(table)
