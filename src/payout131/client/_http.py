"""One call on the wire: the signed request, the retry decisions, and reading the answer.

Nothing here does I/O. ``Client`` and ``AsyncClient`` run the same small loop around their
own ``send`` and ``sleep``::

    exchange = Exchange(call, settings)
    while True:
        outcome = <send exchange.request>  # an httpx.Response, or the httpx.TransportError
        delay = exchange.retry_delay(outcome)
        if delay is None:
            return exchange.result(outcome)
        <sleep delay>

The body is serialised and signed once; every attempt sends the same bytes, the same
signature and the same idempotency key.

``@operation`` is how each Bank 131 method is written once for both clients: the method
builds a ``MethodCall``, and reading it from a client gives a function that sends the call with
that client's ``_send``. On ``Client`` it returns the value, on ``AsyncClient`` an
awaitable of it; type checkers see exactly that.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

import httpx
import msgspec

from payout131.client.config import Settings
from payout131.client.errors import ApiConnectionError, UnexpectedResponseError, error_from_answer
from payout131.client.retry import RETRYABLE_ERRORS, retryable_status
from payout131.client.signing import sign

__all__ = ["Exchange", "MethodCall", "Outcome", "operation"]

P = ParamSpec("P")
T = TypeVar("T")
Outcome = httpx.Response | httpx.TransportError

USER_AGENT = "payout131-client (httpx)"


@dataclass(frozen=True)
class MethodCall(Generic[T]):
    """One Bank 131 method call: where, what, how to read the answer, and its key.

    ``idempotency_key`` is set on mutating calls only; reads go without one.
    """

    path: str
    body: Mapping[str, Any] | list[Any]
    read: Callable[[dict[str, Any]], T]
    idempotency_key: str | None = None
    retry: bool = True  # False: a call that must not be sent twice (the sandbox's moves)
    http_method: str = "POST"  # GET for ``fps/banks``, the API's one read by GET


class Sends(Protocol):
    """A client that answers a call with its value: ``Client``."""

    def _send(self, call: MethodCall[T]) -> T: ...


class SendsAsync(Protocol):
    """A client that answers a call with an awaitable of its value: ``AsyncClient``."""

    def _send(self, call: MethodCall[T]) -> Awaitable[T]: ...


class operation(Generic[P, T]):
    """Make a ``MethodCall`` builder a method that sends the call (see above)."""

    def __init__(self, build: Callable[Concatenate[Any, P], MethodCall[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        self.__signature__ = inspect.signature(build).replace(
            return_annotation=inspect.Signature.empty
        )
        parameters = list(self.__signature__.parameters.values())
        self._bound_signature = self.__signature__.replace(parameters=parameters[1:])

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.__name__ = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SendsAsync, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, client: Sends, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(self, client: Any, owner: type[Any]) -> Any:
        if client is None:
            return self
        build = self._build

        def send(*args: Any, **kwargs: Any) -> Any:
            return client._send(build(client, *args, **kwargs))

        async def send_async(*args: Any, **kwargs: Any) -> Any:
            return await client._send(build(client, *args, **kwargs))

        method = send_async if inspect.iscoroutinefunction(client._send) else send
        method.__name__ = method.__qualname__ = self.__name__
        method.__doc__ = self.__doc__
        method.__signature__ = self._bound_signature  # type: ignore[union-attr]  # inspect reads it
        return method

    def __call__(self, client: Any, *args: Any, **kwargs: Any) -> Any:
        """``Client.status(client, ...)``: the unbound form, as with any method."""
        return self.__get__(client, type(client))(*args, **kwargs)


class Exchange(Generic[T]):
    """A call from its first attempt to the value (or exception) the caller gets."""

    def __init__(self, call: MethodCall[T], settings: Settings) -> None:
        self._call = call
        self._settings = settings
        self._retries = 0
        self.request = _signed_request(call, settings)

    def retry_delay(self, outcome: Outcome) -> float | None:
        """Seconds to wait before trying again, or ``None`` when ``outcome`` is final."""
        if isinstance(outcome, httpx.Response):
            worth_retrying = retryable_status(outcome.status_code)
        else:
            worth_retrying = isinstance(outcome, RETRYABLE_ERRORS)
        if not (worth_retrying and self._call.retry) or self._retries >= self._settings.max_retries:
            return None
        delay = self._settings.backoff.delay(self._retries)
        self._retries += 1
        return delay

    def result(self, outcome: Outcome) -> T:
        """The value of a final outcome; raises the matching ``Bank131Error`` otherwise."""
        if isinstance(outcome, httpx.TransportError):
            raise self._connection_error(outcome) from outcome
        key = self._call.idempotency_key
        try:
            body = msgspec.json.decode(outcome.content)
        except msgspec.DecodeError:
            body = None
        if not (outcome.is_success and isinstance(body, dict) and body.get("status") != "error"):
            raise error_from_answer(
                outcome.status_code, body, idempotency_key=key, retried=self._retries > 0
            )
        try:
            return self._call.read(body)
        except msgspec.ValidationError as exc:
            raise UnexpectedResponseError(
                f"the answer to {self._call.path} does not have the documented shape: {exc}",
                http_status=outcome.status_code,
                idempotency_key=key,
                raw=body,
            ) from exc

    def _connection_error(self, exc: httpx.TransportError) -> ApiConnectionError:
        key = self._call.idempotency_key
        what = f"no answer to {self._call.path} after {self._retries + 1} attempt(s): {exc!r}"
        if key is not None:
            what += (
                "; the operation may or may not have happened: check status() or call again "
                f"with idempotency_key={key!r}"
            )
        return ApiConnectionError(what, idempotency_key=key)


def _signed_request(call: MethodCall[Any], settings: Settings) -> httpx.Request:
    content = msgspec.json.encode(call.body)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        "X-PARTNER-PROJECT": settings.project,
        "X-PARTNER-SIGN": sign(settings.private_key, content),
    }
    if call.idempotency_key is not None:
        headers["X-PARTNER-IDEMPOTENCY-KEY"] = call.idempotency_key
    return httpx.Request(
        call.http_method,
        settings.base_url + call.path,
        content=content,
        headers=headers,
        extensions={"timeout": httpx.Timeout(settings.timeout).as_dict()},
    )
