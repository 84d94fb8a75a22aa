"""Transient faults, classified in one place, and bounded retry with exponential backoff and jitter.

Used by the REST clients (:mod:`mlops_core.clouds.gcp.client`, :mod:`mlops_core.clouds.azure.client`) around each HTTP call
and by the Airflow triggers around each status poll, so both agree on what "try again" means:

* transient: connection errors and timeouts, HTTP 408, 429 and 5xx (our API errors carry
  ``status``; azure-core's ``HttpResponseError`` carries ``status_code``), botocore throttling
  and 5xx, azure-core ``ServiceRequestError`` / ``ServiceResponseError``;
* everything else is final: other 4xx (bad request, auth, not found, conflict), a platform that
  reports a failed job or deployment, programming errors.

Exceptions are recognised by class name along their MRO, so no SDK is imported here (and no
Airflow: the triggers import this module, not the other way round).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Class names (anywhere in an exception's MRO) of connection-level failures and timeouts:
# builtins, requests/urllib3, http.client, aiohttp, botocore, azure-core.
_TRANSIENT_NAMES = frozenset(
    {
        "ConnectionError",  # builtin (reset, refused, aborted, broken pipe) and requests'
        "TimeoutError",
        "Timeout",  # requests (ConnectTimeout, ReadTimeout derive from it)
        "ChunkedEncodingError",
        "ProtocolError",
        "NewConnectionError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "IncompleteRead",
        "RemoteDisconnected",
        "ServerDisconnectedError",
        "ClientConnectionError",
        "EndpointConnectionError",  # botocore
        "ConnectionClosedError",
        "ServiceRequestError",  # azure-core: the request never got an answer
        "ServiceResponseError",
    }
)

# botocore error codes of throttling and server-side trouble (botocore's own retry lists).
_AWS_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def is_transient_status(status: int) -> bool:
    """HTTP 408 (request timeout), 429 (throttled) and every 5xx are worth retrying."""
    return status in (408, 429) or 500 <= status <= 599


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return int(status) if isinstance(status, int) else None
    status = getattr(response, "status_code", None)  # requests.HTTPError
    return status if isinstance(status, int) else None


def is_transient(fault: BaseException | int) -> bool:
    """True when ``fault`` (an exception or an HTTP status) may go away on its own if retried."""
    if isinstance(fault, bool):
        return False
    if isinstance(fault, int):
        return is_transient_status(fault)
    names = {cls.__name__ for cls in type(fault).__mro__}
    if names & _TRANSIENT_NAMES:
        return True
    response = getattr(fault, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = str((response.get("Error") or {}).get("Code") or "")
        if code in _AWS_TRANSIENT_CODES:
            return True
    status = _status_of(fault)
    return status is not None and is_transient_status(status)


def retry_after(source: Any) -> float | None:
    """Seconds a ``Retry-After`` asks for (delta-seconds or an HTTP date), from a response or an error.

    Our API errors keep the header's value in ``retry_after``; responses have ``headers``.
    """
    value = getattr(source, "retry_after", None)
    if value is None:
        headers = getattr(source, "headers", None) or getattr(
            getattr(source, "response", None), "headers", None
        )
        value = headers.get("Retry-After") if headers is not None and hasattr(headers, "get") else None
    if value is None:
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_unsent(fault: BaseException | int) -> bool:
    """True when the request surely had no effect: HTTP 429, or the connection was never made.

    The retry rule for non-idempotent calls that have no way to check whether a failed attempt
    landed (a 5xx or a read timeout may come after the server acted).
    """
    if isinstance(fault, int) and not isinstance(fault, bool):
        return fault == 429
    if isinstance(fault, BaseException):
        if _status_of(fault) == 429:
            return True
        unsent = {"ConnectTimeout", "ConnectionRefusedError", "NewConnectionError", "ConnectTimeoutError"}
        causes = [fault, *(getattr(a, "reason", a) for a in fault.args if isinstance(a, BaseException))]
        return any({c.__name__ for c in type(cause).__mro__} & unsent for cause in causes)
    return False


def backoff_delay(failures: int, base: float, max_delay: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": ``d/2 + U(0, d/2)``, ``d = min(max_delay, base * 2**(failures-1))``.

    Half the delay is fixed so waits really grow; the random half spreads the retries of many
    clients hit by the same outage.
    """
    ceiling = min(max_delay, base * (2 ** max(0, failures - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of :func:`retry_call`.

    :param attempts: calls in all (1 = no retry).
    :param base: first backoff in seconds (doubled per failure, jittered).
    :param max_delay: cap of one backoff.
    :param max_total: no retry starts once this many seconds have passed since the first call
        (nor when the wait would end past it).
    :param sleep: how to wait (tests inject a no-op or a recorder).
    """

    attempts: int = 5
    base: float = 1.0
    max_delay: float = 30.0
    max_total: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


DEFAULT_POLICY = RetryPolicy()  # what the clients use unless given one; read at each call (tests swap it)
NO_RETRY = RetryPolicy(attempts=1)


def default_policy() -> RetryPolicy:
    """The module's current :data:`DEFAULT_POLICY`."""
    return DEFAULT_POLICY


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy | None = None,
    classify: Callable[[BaseException], bool] = is_transient,
    recover: Callable[[BaseException], T | None] | None = None,
    what: str = "call",
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``fn()``, retried while it raises a transient fault, within ``policy``'s attempts and time.

    :param classify: which exceptions to retry (default :func:`is_transient`).
    :param recover: called after a transient failure, before the retry, and on an HTTP 409 of a
        retry; a non-None answer is returned instead of retrying (or failing). Non-idempotent
        creates pass a lookup here ("did my request land after all?"), so a retry never makes a
        second resource and "already exists" on a retry is success.
    :param what: names the call in logs and in the note added to the final error.

    A ``Retry-After`` on the error is honoured in place of the computed backoff. The last error
    is re-raised unchanged (with a note saying how many attempts were made). ``policy`` defaults
    to :data:`DEFAULT_POLICY`.
    """
    policy = policy or default_policy()
    start = clock()
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            failures += 1
            if failures > 1 and recover is not None and _status_of(exc) == 409:
                # "already exists" on a retry: the first attempt landed after all; answer with it
                found = _recovered(recover, exc, what)
                if found is not None:
                    return found
                raise
            if not classify(exc):
                raise
            if recover is not None:
                found = _recovered(recover, exc, what)
                if found is not None:
                    return found
            elapsed = clock() - start
            hinted = retry_after(exc)
            delay = hinted if hinted is not None else backoff_delay(failures, policy.base, policy.max_delay)
            if failures >= policy.attempts or elapsed + delay > policy.max_total:
                exc.add_note(
                    f"{what}: gave up after {failures} attempt(s) in {elapsed:.1f} s "
                    f"(retry bounds: {policy.attempts} attempts, {policy.max_total:g} s)"
                )
                raise
            log.warning(
                "%s failed with a transient error (attempt %d/%d): %s; retrying in %.2f s",
                what,
                failures,
                policy.attempts,
                exc,
                delay,
            )
            policy.sleep(delay)


def _recovered(recover: Callable[[BaseException], T | None], exc: BaseException, what: str) -> T | None:
    """The lookup of ``recover``; a lookup that itself fails transiently answers "not found yet"."""
    try:
        found = recover(exc)
    except Exception as lookup_error:
        if not is_transient(lookup_error):
            raise
        log.warning("%s: the lookup before retrying failed too (%s)", what, lookup_error)
        return None
    if found is not None:
        log.info("%s: %s, but the request had taken effect; not repeating it", what, exc)
    return found


@dataclass
class TransientBudget:
    """How many transient poll errors in a row a waiter tolerates, and for how long.

    A trigger calls :meth:`failed` on each transient error (it answers the wait before the next
    poll, or None once the budget is spent) and :meth:`succeeded` on each good poll (which resets
    the count and the window). Between polls it waits at least ``floor`` seconds.
    """

    max_errors: int = 10
    max_seconds: float = 1800.0
    base: float = 5.0
    max_delay: float = 300.0
    floor: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    errors: int = 0
    first_error_at: float | None = None

    def succeeded(self) -> None:
        self.errors, self.first_error_at = 0, None

    def failed(self, exc: BaseException) -> float | None:
        now = self.clock()
        if self.first_error_at is None:
            self.first_error_at = now
        self.errors += 1
        if self.errors > self.max_errors or now - self.first_error_at > self.max_seconds:
            return None
        delay = max(self.floor, backoff_delay(self.errors, self.base, self.max_delay))
        hinted = retry_after(exc)
        return max(delay, hinted) if hinted is not None else delay

    def exhausted_message(self, exc: BaseException) -> str:
        window = 0.0 if self.first_error_at is None else self.clock() - self.first_error_at
        return (
            f"gave up after {self.errors} transient error(s) in a row over {window:.0f} s "
            f"(limits: {self.max_errors} errors, {self.max_seconds:g} s); last error: {exc}"
        )
