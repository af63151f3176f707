"""``oncoboard chat``: consult a case (or open a recorded one), then ask about it in the terminal.

Heavy imports (the graph, the database driver) happen inside the command so ``oncoboard --help``
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from app.chat.engine import ChatReply

QUIT_WORDS = frozenset({"quit", "exit", "q", ":q", "ende", "beenden"})


def render_reply(reply: ChatReply, console: Console) -> None:
    """Print one answer with its sources and, for a what-if question, the difference table."""
    from rich.markup import escape
    from rich.table import Table

    # Answers quote report text ("[primary]", rule lines): never read them as console markup.
    console.print(f"[bold cyan]oncoboard:[/] {escape(reply.answer)}", highlight=False)
    if reply.diff is not None:
        table = Table("field", "original", "what-if", title=escape(f"what if {reply.diff.change}"))
        for row in reply.diff.rows:
            style = "bold yellow" if row.changed else "dim"
            table.add_row(escape(row.label), escape(row.before), escape(row.after), style=style)
        console.print(table)
    if reply.sources:
        console.print(
            "[dim]sources: " + escape("; ".join(f"{s.label} [{s.ref}]" for s in reply.sources)) + "[/]",
            highlight=False,
        )


def chat(
    case_file: Annotated[
        str | None, typer.Argument(help="Case file to consult first (plain text or JSON case), or -.")
    ] = None,
    case_id: Annotated[str | None, typer.Option("--case-id", help="Open a recorded case instead.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the case text: auto, en or de.")] = "auto",
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Run without the language model (rules and retrieval only).")
    ] = False,
) -> None:
    """Ask questions and what-if changes about a consultation; type quit to leave."""
    if (case_file is None) == (case_id is None):
        typer.echo("error: give a CASE_FILE or --case-id ID (one of them)", err=True)
        raise typer.Exit(2)
    if lang not in {"auto", "en", "de"}:
        typer.echo(f"error: --lang must be auto, en or de, not {lang!r}", err=True)
        raise typer.Exit(2)
    from rich.console import Console

    from app.chat.engine import CaseNotFound, ChatEngine
    from app.render import render_report
    from app.wiring import build_service

    console = Console()
    service = build_service(no_llm=no_llm)
    engine = ChatEngine(service, use_llm=not no_llm)
    if case_file is not None:
        from app.caseio import CaseFormatError, parse_case_bytes, read_case_source
        from oncoboard.config import RunContext, get_settings

        try:
            case = parse_case_bytes(read_case_source(case_file), lang=lang)
        except (OSError, CaseFormatError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        with console.status("consulting ..."):
            report = service.consult(case, RunContext.from_settings(get_settings(), use_llm=not no_llm, language=lang))
    else:
        try:
            report = engine.report(str(case_id))
        except CaseNotFound as exc:
            typer.echo(f"error: no report for case {case_id}", err=True)
            raise typer.Exit(2) from exc
    render_report(report, console)
    if report.status == "rejected":
        raise typer.Exit(2)
    console.print(f'[dim]case {report.case_id} — ask a question, "what if ...?", or quit[/]')
    while True:
        try:
            message = console.input("[bold]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not message:
            continue
        if message.lower() in QUIT_WORDS:
            break
        render_reply(engine.ask(report.case_id, message), console)


def register(app: typer.Typer) -> None:
    """Add ``chat`` to the main CLI."""
    app.command()(chat)
