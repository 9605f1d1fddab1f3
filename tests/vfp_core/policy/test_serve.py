"""``vfp serve``: openpi's websocket/msgpack-numpy protocol, errors that keep the server serving, API keys."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
from policy_helpers import state_history, vfp_cli
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from vfp.policy import Policy, PolicyMetadata, load_policy, wire
from vfp.policy.client import PolicyClient
from vfp.policy.server import PolicyServer, ServeError, ServerThread

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def policy(vfp_run: Path) -> Policy:
    return load_policy(vfp_run, device="cpu")


@pytest.fixture(scope="module")
def server(policy: Policy) -> Iterator[ServerThread]:
    with PolicyServer(policy, port=0, max_request_bytes=LIMIT, max_batch=32).start_in_thread() as running:
        yield running


def _request(batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    state = state_history(batch or 1, seed=seed)
    return {"observation.state": state if batch else state[0]}


def test_the_first_frame_is_the_metadata(server: ServerThread, policy: Policy) -> None:
    with PolicyClient("127.0.0.1", server.port) as client:
        meta = client.metadata
    assert PolicyMetadata.from_dict(meta) == dataclasses.replace(policy.metadata, source="")
    assert meta["trainer"] == "variational_flow_matching_policy"
    assert (meta["history"], meta["horizon"], meta["action_dim"]) == (2, 16, 2)
    assert meta["request_keys"] == {"observation.state": "state"}
    assert meta["protocol"] == "openpi-websocket/msgpack-numpy"


def test_a_served_chunk_is_the_local_one(server: ServerThread, policy: Policy) -> None:
    noise = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    with PolicyClient("127.0.0.1", server.port) as client:
        reply = client.infer({**_request(), "seed": 4, "noise": noise})
        batched = client.predict_chunk(_request(3), seed=5, steps=2)
        second = client.infer({**_request(), "seed": 4, "noise": noise})
    assert reply["actions"].shape == (16, 2)
    assert reply["actions"].dtype == np.float32
    assert np.array_equal(reply["actions"], policy.predict_chunk(_request(), seed=4, noise=noise))
    assert np.array_equal(batched, policy.predict_chunk(_request(3), seed=5, steps=2))
    assert reply["server_timing"]["infer_ms"] > 0
    assert "prev_total_ms" not in reply["server_timing"]
    assert second["server_timing"]["prev_total_ms"] > 0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\xc1 not msgpack", "the frame is not valid msgpack"),
        ("a text frame", "expected a binary msgpack frame, got a text frame"),
        (msgpack.packb([1, 2]), "a request must be a msgpack map"),
        (
            wire.packb({"observation.stat": np.zeros((2, 4), np.float32)}),
            "missing observation key(s) observation.state",
        ),
        (
            wire.packb({"observation.state": np.zeros((2, 5), np.float32)}),
            "observation.state: expected shape (B, T, 4)",
        ),
        (wire.packb({"observation.state": np.zeros((40, 2, 4), np.float32)}), "a batch of 40 observations exceeds"),
        (
            wire.packb({"observation.state": np.zeros((100, 2, 100), np.float32)}),
            f"more than this server's limit of {LIMIT}",
        ),
        (wire.packb({**_request(), "seed": "seven"}), "seed must be an integer"),
        (
            msgpack.packb({"observation.state": {b"__ndarray__": True, b"data": b"x", b"dtype": "|O", b"shape": [1]}}),
            "arrays of dtype object are refused",
        ),
        (
            msgpack.packb(
                {"observation.state": {b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [9**9]}}
            ),
            "needs 1549681956 bytes, the frame has 0",
        ),
    ],
)
def test_a_bad_request_gets_an_error_and_the_connection_serves_on(
    server: ServerThread, frame: bytes | str, message: str
) -> None:
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as connection:
        connection.recv()  # metadata
        connection.send(frame)
        reply = connection.recv()
        assert isinstance(reply, str)
        assert reply.startswith("error: ")
        assert message in reply
        connection.send(wire.packb(_request()))
        assert wire.unpackb(connection.recv())["actions"].shape == (16, 2)


def test_a_client_that_leaves_mid_request_does_not_stop_the_server(server: ServerThread) -> None:
    for _ in range(3):
        connection = connect(f"ws://127.0.0.1:{server.port}")
        connection.recv()
        connection.send(wire.packb(_request(32)))
        connection.close()
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.predict_chunk(_request()).shape == (16, 2)


def test_several_clients_at_once(server: ServerThread, policy: Policy) -> None:
    results: dict[int, list[np.ndarray]] = {}

    def run(index: int) -> None:
        with PolicyClient("127.0.0.1", server.port) as client:
            results[index] = [client.predict_chunk(_request(2, seed=index), seed=10 * index + k) for k in range(4)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    for index, chunks in results.items():
        for k, chunk in enumerate(chunks):
            assert np.array_equal(chunk, policy.predict_chunk(_request(2, seed=index), seed=10 * index + k))


def test_the_health_endpoint(server: ServerThread) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"OK\n"


def test_an_api_key_is_checked_before_any_inference(policy: Policy) -> None:
    with PolicyServer(policy, port=0, api_key="s3cret").start_in_thread() as running:
        for key in (None, "wrong"):
            with pytest.raises(InvalidStatus) as caught:
                PolicyClient("127.0.0.1", running.port, api_key=key)
            assert caught.value.response.status_code == 401
        with PolicyClient("127.0.0.1", running.port, api_key="s3cret") as client:
            assert client.predict_chunk(_request()).shape == (16, 2)


def test_binding_beyond_loopback_needs_a_key(policy: Policy, vfp_run: Path) -> None:
    with pytest.raises(ServeError, match=r"refusing to serve on 0\.0\.0\.0 without an API key"):
        PolicyServer(policy, host="0.0.0.0")
    PolicyServer(policy, host="0.0.0.0", api_key="k")  # allowed with a key (not started)
    done = vfp_cli("serve", str(vfp_run), "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in done.stderr


def test_vfp_serve_answers_and_stops_on_ctrl_c(vfp_run: Path, policy: Policy, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "VFP_SERVE_PORT_FILE": str(port_file), "OMP_NUM_THREADS": "1", "VFP_SERVE_API_KEY": "k"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vfp", "serve", str(vfp_run), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.exists(), process.communicate(timeout=10)
        with PolicyClient("127.0.0.1", int(port_file.read_text()), api_key="k") as client:
            chunk = client.predict_chunk(_request(), seed=3)
        assert np.array_equal(chunk, policy.predict_chunk(_request(), seed=3))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "server stopped" in stderr


def test_vfp_serve_without_its_extra_says_what_to_install(vfp_run: Path) -> None:
    script = "import sys; sys.modules['websockets'] = None; from vfp.cli import main; main(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", script, "serve", str(vfp_run)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "pip install 'vfp-core[serve]'" in done.stderr


def test_the_wire_refuses_to_send_objects() -> None:
    with pytest.raises(wire.WireError, match="cannot send an array of dtype object"):
        wire.packb({"x": np.array([object()])})
