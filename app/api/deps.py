"""Dependencies of the routers: the service runtime, the current user and role checks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.jobs import JobQueue, WorkerPool, WorkerSettings
from graphs.service import ConsultService
from oncoboard.auth import Role, User, authenticate
from oncoboard.storage import Database

logger = logging.getLogger(__name__)

ServiceFactory = Callable[[], ConsultService]


class Runtime:
    """What one API process holds: the consult service (built once), its queue, in-process workers."""

    def __init__(
        self, factory: ServiceFactory, *, workers: int = 0, worker_settings: WorkerSettings | None = None
    ) -> None:
        self._factory = factory
        self._service: ConsultService | None = None
        self._lock = threading.Lock()
        self.workers = workers
        self.worker_settings = worker_settings or WorkerSettings()
        self.pool: WorkerPool | None = None

    @property
    def service(self) -> ConsultService:
        """The consult service, built on first use."""
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            return self._service

    @property
    def db(self) -> Database:
        """The service's database."""
        return self.service.db

    @property
    def queue(self) -> JobQueue:
        """The job queue over the service's database and keyring."""
        return JobQueue(self.service.db, self.service.keyring)

    def start(self) -> None:
        """Build the service and start the in-process workers, if any."""
        service = self.service
        if self.workers > 0:
            self.pool = WorkerPool(self.queue, service, self.workers, self.worker_settings)
            self.pool.start()
            logger.info("started %d in-process workers", self.workers)

    def stop(self) -> None:
        """Stop the in-process workers after their current jobs."""
        if self.pool is not None:
            self.pool.stop()
            self.pool = None


def get_runtime(request: Request) -> Runtime:
    """The runtime of this application."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_service(runtime: RuntimeDep) -> ConsultService:
    """The consult service."""
    return runtime.service


def get_queue(runtime: RuntimeDep) -> JobQueue:
    """The job queue."""
    return runtime.queue


ServiceDep = Annotated[ConsultService, Depends(get_service)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]

_bearer = HTTPBearer(auto_error=False, description="An API token issued by `oncoboard users add`.")


def current_user(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user owning the bearer token (401 without one or with an unknown one)."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = authenticate(runtime.db, credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(role: Role) -> Callable[[User], User]:
    """A dependency admitting users whose role includes ``role`` (403 otherwise)."""

    def dependency(user: CurrentUser) -> User:
        if not user.can(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this action needs the {role} role")
        return user

    dependency.__name__ = f"require_{role}"
    return dependency


AttendingUser = Annotated[User, Depends(require_role("attending"))]
ChiefUser = Annotated[User, Depends(require_role("chief"))]
