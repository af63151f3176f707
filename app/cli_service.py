"""CLI commands of the service: ``serve``, ``worker`` and ``users add|list``.

Heavy imports (FastAPI, the graph, the database driver) happen inside the commands so that
``oncoboard --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

NoLLM = Annotated[bool, typer.Option("--no-llm", help="Run without the language model (rules and retrieval only).")]
RulesOnly = Annotated[
    bool,
    typer.Option("--rules-only", help="Run without the literature retriever and the graph verifier."),
]

users_app = typer.Typer(help="API users and their tokens.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=0, max=32, help="Job workers run as threads of this process.")
    ] = 1,
    no_llm: NoLLM = False,
    rules_only: RulesOnly = False,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json)."""
    import uvicorn

    from app.api import create_app
    from app.jobs import open_service
    from app.wiring import warm_service

    service = open_service(no_llm=no_llm, rules_only=rules_only)
    warm_service(service)
    app = create_app(lambda: service, workers=workers)
    uvicorn.run(app, host=host, port=port, log_level="info")


def worker(
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=32, help="Jobs run at the same time.")] = 1,
    heartbeat: Annotated[float, typer.Option("--heartbeat", min=0.1, help="Heartbeat interval (s).")] = 2.0,
    stale_after: Annotated[
        float, typer.Option("--stale-after", min=1.0, help="Re-claim running jobs silent this long (s).")
    ] = 30.0,
    no_llm: NoLLM = False,
    rules_only: RulesOnly = False,
) -> None:
    """Run queued consultations (jobs submitted with mode async)."""
    from app.jobs import JobQueue, WorkerPool, WorkerSettings, open_service
    from app.wiring import warm_service

    service = open_service(no_llm=no_llm, rules_only=rules_only)
    warm_service(service)
    pool = WorkerPool(
        JobQueue(service.db, service.keyring),
        service,
        concurrency,
        WorkerSettings(heartbeat_s=heartbeat, stale_after_s=stale_after),
    )
    pool.start(once=once)
    try:
        pool.join()
    except KeyboardInterrupt:
        typer.echo("stopping after the current jobs", err=True)
        pool.stop()
    typer.echo(f"processed {pool.processed} job(s)", err=True)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="resident, attending or chief.")],
) -> None:
    """Add a user and print its API token (shown this once only)."""
    from app.wiring import open_database
    from oncoboard.auth import AuthError, add_user

    try:
        user, token = add_user(open_database(), name, role)
    except AuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"added {user.name} ({user.role}); API token (store it now, it is not shown again):", err=True)
    typer.echo(token)


@users_app.command("list")
def users_list() -> None:
    """List users, their roles and active token counts."""
    from app.wiring import open_database
    from oncoboard.auth import list_users

    for info in list_users(open_database()):
        state = "active" if info.active else "disabled"
        typer.echo(f"{info.name}\t{info.role}\t{state}\ttokens={info.tokens}\t{info.created_at:%Y-%m-%d}")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and ``users`` to the main CLI."""
    app.command()(serve)
    app.command()(worker)
    app.add_typer(users_app, name="users")
