"""``vfp serve``: a websocket policy server speaking the protocol of openpi's ``openpi-client``.

Protocol (openpi's ``WebsocketClientPolicy``): the client connects (with ``Authorization: Api-Key KEY``
when the server has a key); the server sends one binary frame, the policy's metadata as msgpack; then
each request is a binary msgpack-numpy frame holding the observation, and each reply a binary frame
``{"actions": (horizon, action_dim) or (B, horizon, action_dim) float32, "server_timing": {"infer_ms",
"prev_total_ms"}}``. A bad request gets a text frame ``error: ...`` naming what was wrong (openpi's
client raises it as ``RuntimeError``), and the connection stays open. ``GET /healthz`` answers ``OK``.

A request is ``predict_chunk``'s observation: the dataset's keys (``observation.state``: ``(history,
D)`` for one observation, ``(B, history, D)`` for a batch; images uint8 ``(history, H, W, C)`` or float
``(history, C, H, W)``), plus optional ``seed`` (int), ``noise`` (``(horizon, action_dim)`` standard
normal, or batched) and ``steps`` (int), which the reply then follows exactly as ``predict_chunk`` does.

Inference runs in one worker thread, one request at a time; the event loop keeps accepting clients,
answering health checks and rejecting bad requests meanwhile. Nothing is ever unpickled.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from vfp.policy import API_KEY_ENV, wire

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

    from vfp.policy.runtime import Policy

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_REQUEST_BYTES",
    "PolicyServer",
    "ServeError",
    "check_bind",
    "is_loopback",
]

DEFAULT_MAX_REQUEST_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_BATCH: Final = 256
CONTROL_KEYS: Final = ("seed", "noise", "steps")
PROTOCOL: Final = "openpi-websocket/msgpack-numpy"

logger = logging.getLogger("vfp.serve")


class ServeError(RuntimeError):
    """The server cannot start as asked (an unsafe bind, a missing dependency)."""


class RequestError(ValueError):
    """A request the server refuses; the message is sent back to the client."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without an API key."""
    if not is_loopback(host) and not api_key:
        raise ServeError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could query the policy. "
            f"Pass --api-key KEY (or set {API_KEY_ENV}); clients send it as `Authorization: Api-Key KEY` "
            "(openpi-client: WebsocketClientPolicy(host, port, api_key=KEY)), or bind to 127.0.0.1"
        )


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RequestError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


class PolicyServer:
    """Serve one :class:`~vfp.policy.Policy` over websockets (see the module docstring for the protocol)."""

    def __init__(
        self,
        policy: Policy,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        check_bind(host, api_key)
        self.policy = policy
        self.host = host
        self.port = port
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vfp-serve-infer")
        metadata = {k: v for k, v in policy.metadata.to_dict().items() if k != "source"}
        self.metadata: dict[str, Any] = {
            **metadata,
            "protocol": PROTOCOL,
            "request_keys": {key: policy.metadata.features[key].role for key in policy.metadata.observation_keys},
            "control_keys": list(CONTROL_KEYS),
            "max_batch": max_batch,
        }
        self._metadata_frame = wire.packb(self.metadata)
        self.bound_port: int | None = None

    # -- requests --------------------------------------------------------------------------------------
    def _check_batch(self, observation: Mapping[str, Any]) -> None:
        for key in self.policy.metadata.observation_keys:
            value = observation.get(key)
            shape = getattr(value, "shape", None)
            rank = len(self.policy.metadata.features[key].shape) + 2  # (B, T, *shape)
            if shape is not None and len(shape) == rank and shape[0] > self.max_batch:
                raise RequestError(
                    f"{key}: a batch of {shape[0]} observations exceeds this server's limit {self.max_batch}"
                )

    def decode(self, message: bytes | str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(observation, predict_chunk keywords)`` of a request frame, or a :class:`RequestError`."""
        if isinstance(message, str):
            raise RequestError("expected a binary msgpack frame, got a text frame")
        if len(message) > self.max_request_bytes:
            raise RequestError(
                f"the request has {len(message)} bytes, more than this server's limit of {self.max_request_bytes}"
            )
        try:
            request = wire.unpackb(message)
        except wire.WireError as exc:
            raise RequestError(str(exc)) from None
        if not isinstance(request, dict) or not all(isinstance(k, str) for k in request):
            raise RequestError(
                "a request must be a msgpack map from observation keys (strings) to arrays, "
                f"got {type(request).__name__}"
            )
        keywords: dict[str, Any] = {}
        if request.get("seed") is not None:
            keywords["seed"] = _int("seed", request["seed"])
        if request.get("steps") is not None:
            keywords["steps"] = _int("steps", request["steps"])
        if request.get("noise") is not None:
            keywords["noise"] = request["noise"]
        observation = {k: v for k, v in request.items() if k not in CONTROL_KEYS}
        self._check_batch(observation)
        return observation, keywords

    def infer(self, observation: Mapping[str, Any], keywords: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], float]:
        """Run the policy (in the worker thread): ``(actions as float32, milliseconds)``."""
        start = time.perf_counter()
        actions = self.policy.predict_chunk(observation, **keywords)
        return np.ascontiguousarray(actions, dtype=np.float32), (time.perf_counter() - start) * 1000.0

    # -- websockets --------------------------------------------------------------------------------------
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Health endpoint and API-key check, before the websocket handshake completes."""
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.api_key:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Api-Key {self.api_key}".encode()):
                logger.warning("refused a connection from %s: missing or wrong API key", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
        return None

    async def handler(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        from vfp.policy.runtime import ObservationError, PolicyError

        loop = asyncio.get_running_loop()
        peer = connection.remote_address
        logger.info("connection from %s", peer)
        previous_total: float | None = None
        try:
            await connection.send(self._metadata_frame)
            async for message in connection:
                start = time.perf_counter()
                try:
                    observation, keywords = self.decode(message)
                    actions, infer_ms = await loop.run_in_executor(self._executor, self.infer, observation, keywords)
                except (RequestError, ObservationError, PolicyError) as exc:
                    await connection.send(f"error: {exc}")
                    continue
                except Exception as exc:  # a bug or a failing model: report it, keep serving
                    logger.exception("inference failed")
                    await connection.send(f"error: inference failed ({type(exc).__name__}: {exc})")
                    continue
                timing = {"infer_ms": infer_ms}
                if previous_total is not None:
                    timing["prev_total_ms"] = previous_total
                await connection.send(wire.packb({"actions": actions, "server_timing": timing}))
                previous_total = (time.perf_counter() - start) * 1000.0
        except ConnectionClosed:
            pass
        finally:
            logger.info("connection from %s closed", peer)

    async def run(self, stop: asyncio.Future[None], ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is done; ``ready(port)`` is called once listening."""
        from websockets.asyncio.server import serve

        # The hard frame limit leaves room above max_request_bytes so that an oversize request gets a reply.
        async with serve(
            self.handler,
            self.host,
            self.port,
            compression=None,
            max_size=max(2 * self.max_request_bytes, 1 << 20),
            process_request=self.process_request,
        ) as server:
            self.bound_port = _port_of(server)
            if ready is not None:
                ready(self.bound_port)
            await stop
        self._executor.shutdown(wait=False, cancel_futures=True)

    def serve_forever(self, ready: Callable[[int], None] | None = None) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then close every connection and return."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            stop: asyncio.Future[None] = loop.create_future()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _finish, stop)
            await self.run(stop, ready)

        asyncio.run(main())

    def start_in_thread(self) -> ServerThread:
        """Serve from a background thread (tests, notebooks); ``.stop()`` ends it. Returns once listening."""
        return ServerThread(self)


def _finish(stop: asyncio.Future[None]) -> None:
    if not stop.done():
        stop.set_result(None)


def _port_of(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise ServeError("the server has no listening socket")


class ServerThread:
    """A :class:`PolicyServer` running on its own event loop in a daemon thread."""

    def __init__(self, server: PolicyServer, timeout: float = 30.0) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Future[None] = self._loop.create_future()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="vfp-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServeError(f"the server did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self.server.run(self._stop, lambda port: self._ready.set()))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    @property
    def port(self) -> int:
        assert self.server.bound_port is not None
        return self.server.bound_port

    def stop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_finish, self._stop)
        self._thread.join(30)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
