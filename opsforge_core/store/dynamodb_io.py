"""Low-level DynamoDB access for ``DynamoDBStore``: calls, errors, paging and batch writes.

Every client call goes through ``Tables.call``, which turns botocore exceptions into the
project's ``StoreError`` subclasses, naming the table and key. Reads that list items page until
``LastEvaluatedKey`` is absent, also across pages that come back empty, because DynamoDB may end
a page after evaluating items that a filter then drops. ``Tables.submit`` runs independent calls on
a small thread pool: boto3 clients are thread-safe, and most of a call's time is spent waiting.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from opsforge_core.errors import (
    ConflictError,
    PartialWriteError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from opsforge_core.store.codec import (
    MAX_ITEM_BYTES,
    compress,
    decode_cursor,
    decompress,
    encode_cursor,
    from_dynamo,
    item_size,
    to_dynamo,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")

INIT_HINT = "run `python -m opsforge_core store init`"
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
_ACCESS = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
}
# BatchWriteItem takes at most 25 requests and BatchGetItem 100 keys. Unprocessed ones are
# retried this many times with full-jitter exponential backoff from BATCH_BASE_DELAY seconds.
BATCH_SIZE = 25
BATCH_GET_SIZE = 100
BATCH_ATTEMPTS = 8
BATCH_BASE_DELAY = 0.05
BATCH_MAX_DELAY = 2.0
# Threads that ``Tables.submit`` runs calls on. A call spends most of its time waiting for the
# response, so a few threads overlap that wait with building the next request in Python.
CALL_THREADS = 4

# Room left under the 400 KB limit for the error of the ``item_size`` estimate.
ITEM_BUDGET = MAX_ITEM_BYTES - 2048
LIMIT_TEXT = "DynamoDB's 400 KB item limit"


class _ExactDeserializer(TypeDeserializer):
    """boto3's deserializer, except that numbers are read with the exact ``Decimal()``.

    boto3 reads numbers in a 38-digit context that raises ``Rounded`` on the plain-digit form
    that dynalite 4 returns for large values (9.8e125 comes back as 126 digits).
    """

    def _deserialize_n(self, value: str) -> Decimal:
        return Decimal(value)


_serializer = TypeSerializer()
_deserializer = _ExactDeserializer()


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """Convert a normalized plain item to DynamoDB's attribute-value form."""
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in item.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """Convert an attribute-value item to plain JSON-safe data."""
    return {k: from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def pack(fixed: dict[str, Any], document: Any, field: str = "doc") -> dict[str, Any] | None:
    """Return ``fixed`` plus the document, plain or gzip compressed, or None if neither fits."""
    item = {**fixed, field: document}
    if item_size(item) <= ITEM_BUDGET:
        return item
    item = {**fixed, f"{field}_gz": compress(document)}
    if item_size(item) <= ITEM_BUDGET:
        return item
    return None


def unpack(item: dict[str, Any], field: str = "doc") -> Any:
    """Return the document of an item written by ``pack``, or stored as JSON text.

    ``{field}_json`` is a string attribute of compact JSON, which costs far less to send and
    read than the same document as a map attribute (alert feed items use it).
    """
    if f"{field}_gz" in item:
        return decompress(item[f"{field}_gz"])
    if f"{field}_json" in item:
        return json.loads(item[f"{field}_json"])
    return item.get(field)


class Tables:
    """A boto3 DynamoDB client bound to the store's table names, with error mapping."""

    def __init__(
        self,
        client: Any,
        endpoint: str | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.endpoint = endpoint or "AWS"
        self.sleep = sleep
        self.threads = CALL_THREADS
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def submit(self, function: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``function(*args)`` on one of the call threads and return its future.

        ``function`` must not wait for other submitted calls, because all the threads may be
        busy with the callers it waits for.
        """
        return self._pool().submit(function, *args)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="dynamodb")
            return self._executor

    def close(self) -> None:
        """Stop the call threads; a later ``submit`` starts new ones."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def call(self, operation: str, table: str, target: str, **kwargs: Any) -> dict[str, Any]:
        """Run one client operation; ``target`` names the key or query in error messages."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            raise self.client_error(exc, table, target) from exc
        except NoCredentialsError as exc:
            raise StoreUnavailableError(
                f"{table} {target}: no AWS credentials found; set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StoreUnavailableError(
                f"{table} {target}: DynamoDB at {self.endpoint} could not be reached after "
                f"retries ({exc}); check OPSFORGE_DYNAMODB_ENDPOINT and the network"
            ) from exc
        except ParamValidationError as exc:
            raise ValidationError(f"{table} {target}: invalid request: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"{table} {target}: DynamoDB call {operation} failed: {exc}") from exc

    def client_error(self, exc: ClientError, table: str, target: str) -> StoreError:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code == "ResourceNotFoundException":
            return StoreUnavailableError(
                f"table {table} does not exist at {self.endpoint} ({target}); {INIT_HINT}"
            )
        if code == "ConditionalCheckFailedException":
            return ConflictError(f"{table} {target}: the item changed concurrently ({message})")
        if code == "ValidationException":
            return ValidationError(f"{table} {target}: DynamoDB rejected the request: {message}")
        if code in _THROTTLED:
            return StoreUnavailableError(
                f"{table} {target}: DynamoDB throttled the request after retries ({code})"
            )
        if code in _ACCESS:
            return StoreUnavailableError(
                f"{table} {target}: DynamoDB at {self.endpoint} rejected the credentials or "
                f"permissions ({code}: {message})"
            )
        return StoreError(f"{table} {target}: DynamoDB failed with {code}: {message}")

    # -- reads ---------------------------------------------------------------------------------

    def get(self, table: str, key: dict[str, Any], consistent: bool = True) -> dict | None:
        response = self.call(
            "get_item",
            table,
            describe_key(key),
            TableName=table,
            Key=serialize(key),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def pages(self, operation: str, table: str, target: str, **kwargs: Any) -> Iterator[list[dict]]:
        """Yield each page's items until ``LastEvaluatedKey`` is absent."""
        kwargs = {"TableName": table, **kwargs}
        while True:
            response = self.call(operation, table, target, **kwargs)
            yield [deserialize(item) for item in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def all_items(self, operation: str, table: str, target: str, **kwargs: Any) -> list[dict]:
        return [item for page in self.pages(operation, table, target, **kwargs) for item in page]

    def page(
        self,
        operation: str,
        table: str,
        target: str,
        *,
        limit: int,
        cursor: str | None,
        key_attrs: list[str],
        filtered: bool = False,
        **kwargs: Any,
    ) -> tuple[list[dict], str | None]:
        """Return up to ``limit`` items from ``cursor`` on, and the cursor after them.

        A filtered read requests more items than it still needs, since the filter may drop
        many. When the last page ends with items left over, the next cursor is
        the key of the last item returned, so nothing is skipped.
        """
        kwargs = {"TableName": table, **kwargs}
        if cursor:
            start = decode_cursor(cursor, set(key_attrs))
            kwargs["ExclusiveStartKey"] = serialize(start)
        items: list[dict] = []
        while True:
            remaining = limit - len(items)
            kwargs["Limit"] = max(remaining, 100) if filtered else remaining
            response = self.call(operation, table, target, **kwargs)
            page = [deserialize(item) for item in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if len(page) >= remaining:
                items.extend(page[:remaining])
                more = len(page) > remaining or bool(last)
                return items, (encode_cursor(_key_of(items[-1], key_attrs)) if more else None)
            items.extend(page)
            if not last:
                return items, None
            kwargs["ExclusiveStartKey"] = last

    def batch_get(
        self, table: str, keys: list[dict[str, Any]], key_attrs: list[str]
    ) -> dict[tuple, dict[str, Any]]:
        """Read items by key with consistent BatchGetItem calls of up to 100 keys.

        Returns the items found, by the tuple of their key values. Unprocessed keys are retried
        with jittered backoff; keys still unprocessed after that raise ``StoreError``.
        """
        unique = list({tuple(k[a] for a in key_attrs): k for k in keys}.values())
        found: dict[tuple, dict[str, Any]] = {}
        for start in range(0, len(unique), BATCH_GET_SIZE):
            pending = [serialize(k) for k in unique[start : start + BATCH_GET_SIZE]]
            for attempt in range(BATCH_ATTEMPTS):
                response = self.call(
                    "batch_get_item",
                    table,
                    f"batch of {len(pending)} keys",
                    RequestItems={table: {"Keys": pending, "ConsistentRead": True}},
                )
                for item in response.get("Responses", {}).get(table, []):
                    plain = deserialize(item)
                    found[tuple(plain[a] for a in key_attrs)] = plain
                pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                if not pending:
                    break
                self._back_off(table, len(pending), attempt)
            if pending:
                raise StoreError(
                    f"{table}: {len(pending)} keys stayed unprocessed after {BATCH_ATTEMPTS} "
                    "BatchGetItem attempts; DynamoDB is overloaded, retry later"
                )
        return found

    def _back_off(self, table: str, count: int, attempt: int) -> None:
        delay = random.uniform(0, min(BATCH_MAX_DELAY, BATCH_BASE_DELAY * 2**attempt))
        logger.info(
            "%s: retrying %d unprocessed items in %.2f s (attempt %d of %d)",
            table,
            count,
            delay,
            attempt + 1,
            BATCH_ATTEMPTS,
        )
        self.sleep(delay)

    # -- writes --------------------------------------------------------------------------------

    def batch_write(
        self,
        table: str,
        requests: list[dict],
        key_attrs: list[str],
        before_call: Callable[[], None] | None = None,
    ) -> int:
        """Write ``requests`` (PutRequest/DeleteRequest, already serialized) in batches of 25.

        Unprocessed items are retried with jittered backoff. When a batch fails or runs out of
        retries, raises ``PartialWriteError`` with the keys of every request not confirmed
        written. The requests before that batch were written. ``before_call`` runs before each
        BatchWriteItem call, and a ``StoreError`` it raises stops the writes the same way.
        """
        written = 0
        for start in range(0, len(requests), BATCH_SIZE):
            pending = requests[start : start + BATCH_SIZE]
            later = requests[start + BATCH_SIZE :]
            for attempt in range(BATCH_ATTEMPTS):
                try:
                    if before_call is not None:
                        before_call()
                    response = self.call(
                        "batch_write_item",
                        table,
                        f"batch of {len(pending)}",
                        RequestItems={table: pending},
                    )
                except StoreError as exc:
                    raise self._partial(table, pending + later, key_attrs, str(exc)) from exc
                unprocessed = response.get("UnprocessedItems", {}).get(table, [])
                written += len(pending) - len(unprocessed)
                pending = unprocessed
                if not pending:
                    break
                self._back_off(table, len(pending), attempt)
            if pending:
                reason = f"{len(pending)} items stayed unprocessed after {BATCH_ATTEMPTS} attempts"
                raise self._partial(table, pending + later, key_attrs, reason)
        return written

    def _partial(
        self, table: str, requests: list[dict], key_attrs: list[str], reason: str
    ) -> PartialWriteError:
        keys = [_request_key(r, key_attrs) for r in requests]
        shown = ", ".join(describe_key(k) for k in keys[:3])
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        # One delivery can fail in hundreds of batches; its caller logs the combined error once.
        logger.debug("%s: %d items not written: %s", table, len(keys), reason)
        return PartialWriteError(
            f"{table}: {len(keys)} items not written ({shown}{more}): {reason}", keys
        )


def _key_of(item: dict[str, Any], key_attrs: list[str]) -> dict[str, Any]:
    return {name: item[name] for name in key_attrs}


def _request_key(request: dict, key_attrs: list[str]) -> dict[str, Any]:
    if "PutRequest" in request:
        attrs = request["PutRequest"]["Item"]
    else:
        attrs = request["DeleteRequest"]["Key"]
    return deserialize({name: attrs[name] for name in key_attrs if name in attrs})


def describe_key(key: dict[str, Any]) -> str:
    return " ".join(f"{name}={value!r}" for name, value in key.items())
