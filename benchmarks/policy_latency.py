"""Policy runtime latency: ``predict_chunk`` and ``act`` against the bare network call, and served round trips.

For the quickstart policy (VFP, state observations) and its image variant
(``variational_flow_matching_policy/exp2``, 64x64 RGB plus state), at 1, 4 and 10 integration steps,
one observation per call:

- **bare**: the trainer's ``sample_actions`` on an already normalized batch on the device (the network
  calls and nothing else), in this process;
- **predict_chunk**: the same through the runtime (numpy in, checks, normalization, unnormalization,
  numpy out);
- **act**: one control step with ``action_steps=1``, so that every call queries the model (history
  kept by the policy); with the default 8 action steps 7 of 8 calls only pop a queue;
- **served**: a ``vfp serve`` process on loopback and a client in another process: the real
  ``openpi-client`` when its venv exists (``nox -s openpi`` creates it; ``VFP_OPENPI_PYTHON`` or
  ``~/.cache/vfp/nox-openpi``), else vfp's own ``PolicyClient`` (the table says which). Its overhead is
  each request's round trip minus the server's own ``predict_chunk`` time for that request (the reply's
  ``infer_ms``): packing, the socket and unpacking, measured on the same request.

The local calls are timed in turn within every round (bare, predict_chunk, act, bare, ...), so that a
load spike on a shared machine hits all three alike.

Targets (issue 11): runtime overhead under 10% of the bare call at p50; served round trip under 2 ms
above the local call at p50 for a state observation (real openpi client).

The policies' weights do not change their latency: by default each is trained for a few steps on
a small generated dataset (``--quickstart-run`` / ``--image-run`` take existing runs instead).
Run: ``python benchmarks/policy_latency.py [--repeat 300]`` (``OMP_NUM_THREADS=1`` is set for both
processes; the numbers come from this machine, not a reference).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

OPENPI_PYTHON = Path(
    os.environ.get("VFP_OPENPI_PYTHON", Path.home() / ".cache" / "vfp" / "nox-openpi" / "bin" / "python")
)
STEPS = (1, 4, 10)

OPENPI_TIMER = """
import json, sys, time
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, inputs, repeat, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = dict(np.load(inputs))
policy = WebsocketClientPolicy("127.0.0.1", port)
request = {**data, "steps": steps}
for _ in range(20):
    policy.infer(request)
times, server = [], []
for _ in range(repeat):
    start = time.perf_counter()
    reply = policy.infer(request)
    times.append((time.perf_counter() - start) * 1000)
    server.append(reply["server_timing"]["infer_ms"])
print(json.dumps({"times": times, "server": server}))
"""


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def timed(call: Callable[[], object], repeat: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def interleaved(calls: dict[str, Callable[[], object]], repeat: int, warmup: int = 20) -> dict[str, list[float]]:
    """Times (ms) of each call, taken in turn within every round: a load spike hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for round_ in range(warmup + repeat):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                if round_ >= warmup:
                    times[name].append((time.perf_counter() - start) * 1000)
    return times


def train_run(name: str, folder: Path, steps: int) -> Path:
    from vfp.config import load_experiment
    from vfp.engine import TrainOptions, train

    run = folder / name.replace("/", "_")
    overrides = [
        f"training.max_steps={steps}",
        f"checkpointing.every={steps}",
        f"data.path={folder / (name.replace('/', '_') + '.hdf5')}",
        "data.generate.episodes=12",
        "data.batch_size=32",
        "logging.callbacks=[{type: jsonl}]",
        "evaluation.episodes=2",
    ]
    train(load_experiment(name, overrides).config, TrainOptions(run_dir=run, progress="none"))
    return run


def observation_of(policy: Any) -> dict[str, np.ndarray]:
    """One observation with history, as a client sends it: state floats, images uint8 (T, H, W, C)."""
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for key in policy.metadata.observation_keys:
        spec = policy.metadata.features[key]
        if spec.role == "image":
            channels, height, width = spec.shape
            out[key] = rng.integers(0, 256, (policy.history, height, width, channels), dtype=np.uint8)
        else:
            out[key] = rng.normal(0.0, 0.5, (policy.history, *spec.shape)).astype(np.float32)
    return out


class Server:
    """``vfp serve RUN --port 0`` in its own process."""

    def __init__(self, run: Path, folder: Path) -> None:
        port_file = folder / f"port-{run.name}"
        port_file.unlink(missing_ok=True)
        env = {**os.environ, "VFP_SERVE_PORT_FILE": str(port_file), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "vfp", "serve", str(run), "--port", "0", "--device", "cpu"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while not port_file.exists() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not port_file.exists():
            raise RuntimeError(f"vfp serve did not start: {self.process.communicate(timeout=10)[1]}")
        self.port = int(port_file.read_text())

    def close(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)


def served_times(
    port: int, observation: dict[str, np.ndarray], steps: int, repeat: int, folder: Path
) -> tuple[list[float], list[float], str]:
    """Round-trip times (ms) and the server's own inference times, with the openpi client when installed."""
    if OPENPI_PYTHON.exists():
        inputs = folder / "request.npz"
        np.savez(inputs, **observation)
        done = subprocess.run(
            [str(OPENPI_PYTHON), "-c", OPENPI_TIMER, str(port), str(inputs), str(repeat), str(steps)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        result = json.loads(done.stdout)
        return result["times"], result["server"], "openpi-client 0.1.2"
    from vfp.policy.client import PolicyClient

    server_ms: list[float] = []
    with PolicyClient("127.0.0.1", port) as client:

        def call() -> None:
            server_ms.append(client.infer({**observation, "steps": steps})["server_timing"]["infer_ms"])

        times = timed(call, repeat)
    return times, server_ms[-repeat:], "vfp PolicyClient"


def bench_policy(label: str, run: Path, repeat: int, folder: Path, serve: bool) -> list[dict[str, Any]]:
    from vfp.policy import load_policy

    policy = load_policy(run, device="cpu")
    actor = load_policy(run, device="cpu", action_steps=1)
    observation = observation_of(policy)
    frame = {key: value[-1] for key, value in observation.items()}
    batched = {key: torch.from_numpy(value[None]) for key, value in observation.items()}
    normalized = policy.normalize_observation(
        {
            key: value.movedim(-1, -3).float().div(255.0) if value.dtype == torch.uint8 else value
            for key, value in batched.items()
        }
    )
    server = Server(run, folder) if serve else None
    rows = []
    try:
        for steps in STEPS:
            calls = {
                "bare": lambda: policy.trainer.sample_actions(normalized, steps),  # noqa: B023
                "predict_chunk": lambda: policy.predict_chunk(observation, steps=steps),  # noqa: B023
                "act": lambda: actor.act(frame, steps=steps),  # noqa: B023
            }
            row: dict[str, Any] = {"policy": label, "steps": steps, **interleaved(calls, repeat)}
            if server is not None:
                row["served"], row["server_infer"], row["client"] = served_times(
                    server.port, observation, steps, repeat, folder
                )
            rows.append(row)
            print(f"  {label} steps={steps} done", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| policy | steps | bare p50 / p99 ms | predict_chunk p50 / p99 ms | overhead p50 | act p50 / p99 ms "
        "| overhead p50 | served round trip p50 / p99 ms | round trip − server's predict_chunk p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        bare, local, act = (percentiles(row[key]) for key in ("bare", "predict_chunk", "act"))
        cells = [
            row["policy"],
            str(row["steps"]),
            f"{bare[0]:.2f} / {bare[1]:.2f}",
            f"{local[0]:.2f} / {local[1]:.2f}",
            f"{100 * (local[0] / bare[0] - 1):+.1f}%",
            f"{act[0]:.2f} / {act[1]:.2f}",
            f"{100 * (act[0] / bare[0] - 1):+.1f}%",
        ]
        if "served" in row:
            served = percentiles(row["served"])
            transport = percentiles([rt - infer for rt, infer in zip(row["served"], row["server_infer"], strict=True)])
            cells += [f"{served[0]:.2f} / {served[1]:.2f}", f"{transport[0]:.2f} / {transport[1]:.2f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    clients = sorted({row["client"] for row in rows if "client" in row})
    if clients:
        lines.append(
            f"\nServed with: {', '.join(clients)}; server and client processes on loopback, one thread each. The last "
            "column is each request's round trip minus the server's own predict_chunk time for it (its `infer_ms`): "
            "what the network path adds, measured on the same request."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300, help="Timed calls per measurement (after 20 warm-up).")
    parser.add_argument("--quickstart-run", type=Path, help="A trained quickstart run (default: train 20 steps).")
    parser.add_argument("--image-run", type=Path, help="A trained variational_flow_matching_policy/exp2 run.")
    parser.add_argument("--no-serve", action="store_true", help="Skip the served round trips.")
    parser.add_argument("--json", type=Path, help="Also write the raw times here.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="vfp-policy-latency-") as tmp:
        folder = Path(tmp)
        print("training the policies (a few steps each) ...", file=sys.stderr, flush=True)
        quickstart = args.quickstart_run or train_run("quickstart", folder, 20)
        images = args.image_run or train_run("variational_flow_matching_policy/exp2", folder, 20)
        rows = bench_policy("quickstart (state)", quickstart, args.repeat, folder, not args.no_serve)
        rows += bench_policy("exp2 (64x64 image + state)", images, args.repeat, folder, not args.no_serve)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows) + "\n")


if __name__ == "__main__":
    main()
