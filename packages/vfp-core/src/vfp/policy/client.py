"""``PolicyClient``: vfp's own small client for ``vfp serve`` (numpy, msgpack and websockets; no torch).

It speaks the same protocol as openpi's ``WebsocketClientPolicy`` (see :mod:`vfp.policy.server`)::

    from vfp.policy.client import PolicyClient

    with PolicyClient("127.0.0.1", 8000) as client:
        chunk = client.predict_chunk({"observation.state": state_history}, seed=0)   # (horizon, action_dim)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vfp.policy import wire

__all__ = ["PolicyClient", "PolicyServerError"]


class PolicyServerError(RuntimeError):
    """The server answered a request with an error (the message is the server's)."""


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    return value


class PolicyClient:
    """A connection to a policy server: ``metadata``, ``infer`` (the raw reply) and ``predict_chunk``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 8000,
        *,
        api_key: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        from websockets.sync.client import connect

        uri = host if host.startswith("ws") else f"ws://{host}"
        if port is not None:
            uri += f":{port}"
        self.uri = uri
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self._connection = connect(
            uri, compression=None, max_size=None, additional_headers=headers, open_timeout=open_timeout
        )
        first = self._connection.recv()
        if isinstance(first, str):
            raise PolicyServerError(f"expected the server's metadata frame, got text: {first}")
        self.metadata: dict[str, Any] = wire.unpackb(first)

    def infer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request (observation keys plus optional ``seed``, ``noise``, ``steps``); return the reply."""
        self._connection.send(wire.packb({key: _to_numpy(value) for key, value in request.items()}))
        reply = self._connection.recv()
        if isinstance(reply, str):
            raise PolicyServerError(reply.removeprefix("error: "))
        decoded: dict[str, Any] = wire.unpackb(reply)
        return decoded

    def predict_chunk(
        self,
        observation: Mapping[str, Any],
        *,
        steps: int | None = None,
        noise: Any | None = None,
        seed: int | None = None,
    ) -> np.ndarray[Any, Any]:
        """The server policy's ``predict_chunk`` (same arguments, same result for the same seed and noise)."""
        request = dict(observation)
        for key, value in (("steps", steps), ("noise", noise), ("seed", seed)):
            if value is not None:
                request[key] = value
        actions: np.ndarray[Any, Any] = self.infer(request)["actions"]
        return actions

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
