"""Exceptions raised by OpsForge.

    OpsForgeError
    ├── ConfigError          an OPSFORGE_* setting is invalid
    ├── IngestError          an inbound payload or record is invalid (names the field)
    ├── StoreError           a store backend failed
    │   ├── StoreUnavailableError   the backend cannot be reached or a table is missing
    │   ├── ValidationError          an item was rejected before it was sent
    │   └── ConflictError            a conditional write lost a race
    └── LLMError             an LLM provider failed (carries ``retryable``)

SDK exceptions are caught inside the adapter that called the SDK and re-raised as one of these,
chained with ``from exc``.
"""

from __future__ import annotations


class OpsForgeError(Exception):
    """Base class of every error OpsForge raises on purpose."""


class ConfigError(OpsForgeError):
    """An OPSFORGE_* environment variable has an invalid value."""


class IngestError(OpsForgeError):
    """An inbound payload or one record in it is invalid.

    ``field`` is the dotted path of the offending field (``alerts[2].starts_at``) so the
    sender can fix it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class StoreError(OpsForgeError):
    """A store backend failed; the message names the table and key."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached, or a table does not exist."""


class ValidationError(StoreError):
    """An item was rejected before any call to the backend (for example an empty key)."""


class ConflictError(StoreError):
    """A conditional write found the item in another state than expected."""


class PartialWriteError(StoreError):
    """A batch write gave up with items unwritten; ``unwritten`` lists their keys."""

    def __init__(self, message: str, unwritten: list[dict]) -> None:
        self.unwritten = unwritten
        super().__init__(message)


class LLMError(OpsForgeError):
    """An LLM provider call failed.

    ``retryable`` is True for throttling, overload, 5xx and timeouts; ``retry_after`` is the
    server's requested delay in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)
