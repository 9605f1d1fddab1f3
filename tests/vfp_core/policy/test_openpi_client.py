"""openpi's real ``openpi-client`` (from PyPI, in its own numpy<2 venv) against ``vfp serve``.

Run by ``nox -s openpi``, which creates that venv once (``VFP_OPENPI_VENV``, default
``~/.cache/vfp/nox-openpi``) and passes its python as ``VFP_OPENPI_PYTHON``. The client sends the
observation with a ``seed`` and a ``noise`` array, and must get exactly the chunk that
``predict_chunk`` gives locally with the same seed and noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from policy_helpers import state_history

from vfp.policy import load_policy

pytestmark = pytest.mark.openpi

OPENPI_PYTHON = Path(
    os.environ.get("VFP_OPENPI_PYTHON", Path.home() / ".cache" / "vfp" / "nox-openpi" / "bin" / "python")
)
API_KEY = "openpi-test-key"

CLIENT = """
import json, sys
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, api_key, inputs, outputs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = np.load(inputs)
policy = WebsocketClientPolicy("127.0.0.1", port, api_key=api_key)
reply = policy.infer({"observation.state": data["state"], "seed": 7, "noise": data["noise"]})
again = policy.infer({"observation.state": data["state"], "seed": 7, "noise": data["noise"]})
try:
    policy.infer({"observation.stat": data["state"]})
    error = None
except RuntimeError as exc:
    error = str(exc)
np.save(outputs, reply["actions"])
print(json.dumps({
    "metadata_horizon": policy.get_server_metadata()["horizon"],
    "timing": sorted(again["server_timing"]),
    "error": error,
    "numpy": np.__version__,
}))
"""


@pytest.fixture(scope="module")
def served(vfp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not OPENPI_PYTHON.exists():
        pytest.skip(f"no openpi-client venv at {OPENPI_PYTHON}: run `nox -s openpi` (it creates it)")
    port_file = tmp_path_factory.mktemp("serve") / "port"
    env = {**os.environ, "VFP_SERVE_PORT_FILE": str(port_file), "VFP_SERVE_API_KEY": API_KEY, "OMP_NUM_THREADS": "1"}
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
        yield int(port_file.read_text())
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _client(
    port: int, api_key: str, folder: Path, state: np.ndarray, noise: np.ndarray
) -> subprocess.CompletedProcess[str]:
    np.savez(folder / "inputs.npz", state=state, noise=noise)
    return subprocess.run(
        [str(OPENPI_PYTHON), "-c", CLIENT, str(port), api_key, str(folder / "inputs.npz"), str(folder / "actions.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_openpi_client_gets_the_local_chunk(served: int, vfp_run: Path, tmp_path: Path) -> None:
    state = state_history(1)[0]  # (history, state_dim): one observation, as openpi clients send
    noise = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    done = _client(served, API_KEY, tmp_path, state, noise)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["numpy"].startswith("1.")  # really openpi's own environment
    assert report["metadata_horizon"] == 16
    assert report["timing"] == ["infer_ms", "prev_total_ms"]
    assert "missing observation key(s) observation.state" in report["error"]
    local = load_policy(vfp_run, device="cpu").predict_chunk({"observation.state": state}, seed=7, noise=noise)
    assert np.array_equal(np.load(tmp_path / "actions.npy"), local)


def test_openpi_client_with_a_wrong_key_is_refused(served: int, tmp_path: Path) -> None:
    done = _client(served, "wrong-key", tmp_path, state_history(1)[0], np.zeros((16, 2), np.float32))
    assert done.returncode != 0
    assert "HTTP 401" in done.stderr
    assert not (tmp_path / "actions.npy").exists()
