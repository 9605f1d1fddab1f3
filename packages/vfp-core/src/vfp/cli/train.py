"""``vfp train`` and ``vfp eval``: the training engine on the command line.

torch is imported inside the commands only, so ``vfp --help`` stays light.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vfp._plugins import PluginError, get_host
from vfp.cli._common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    complete_config,
    config_errors,
    err,
    escape,
    fail,
    print_json,
)
from vfp.launch import ProcessPlacement, under_torchrun
from vfp.run_layout import default_run_dir, holds_a_run, run_dir_of

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

CONFIG_HELP = (
    "Experiment YAML file, or the name of a packaged experiment (see `vfp configs list`). "
    "Leave it out with --resume: the run's saved config is used."
)
OVERRIDES_HELP = (
    "Overrides, applied last: KEY.PATH=VALUE (read as YAML: 1e-4, [1, 2], true) or ~KEY.PATH to delete a key; "
    "see docs/configs.md."
)
PROGRESS_MODES = ("auto", "rich", "plain", "none")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``eval`` to the ``vfp`` application."""
    app.command("train", no_args_is_help=True)(train)
    app.command("eval", no_args_is_help=True)(evaluate)


def _split_config_argument(
    config: str | None, overrides: list[str], resume: Path | None
) -> tuple[str | None, list[str]]:
    """With --resume, a first positional ``KEY=VALUE`` or ``~KEY`` is an override, not a config."""
    from vfp.config._compose import is_override

    if resume is not None and config is not None and is_override(config) and not Path(config).exists():
        return None, [config, *overrides]
    return config, overrides


def _load_config(config: str, overrides: list[str], host: PluginHost) -> tuple[ExperimentConfig, Path]:
    from vfp.config import load_experiment

    loaded = load_experiment(config, overrides, host=host)
    return loaded.config, loaded.source


def train(
    config: str | None = typer.Argument(None, help=CONFIG_HELP, autocompletion=complete_config, show_default=False),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="Total optimizer steps (resuming with a larger value extends the run)."
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory (default: runs/NAME-DATE-TIME)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every generator (overrides `seed`)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (overrides `device`)."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this directory (or from this checkpoint file) exactly."
    ),
    nproc: int | None = typer.Option(
        None, "--nproc", min=1, help="Launch N data-parallel processes on this machine through torchrun."
    ),
    progress: str = typer.Option("auto", "--progress", help="auto (a bar on a terminal), rich, plain or none."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="One run per seed (0,1,2 or 0-4), into RUN_DIR-seedS; `vfp runs compare` groups them."
    ),
    parallel: int = typer.Option(1, "--parallel", min=1, help="With --seeds: how many seeds train at once."),
) -> None:
    """Train an experiment. Exit codes: 0 done, 1 failure, 2 config or usage error, 130 SIGINT, 143 SIGTERM.

    Examples: `vfp train quickstart`, `vfp train exp.yaml optimizers.default.lr=1e-4 --max-steps 2000`,
    `vfp train --resume runs/quickstart-20250101-120000 --max-steps 4000`.
    """
    overrides = list(overrides or [])
    config, overrides = _split_config_argument(config, overrides, resume)
    if progress not in PROGRESS_MODES:
        raise fail(f"--progress must be one of {', '.join(PROGRESS_MODES)}, got {progress!r}", EXIT_USAGE)
    if resume is None and config is None:
        raise fail("give an experiment CONFIG, or --resume RUN_DIR", EXIT_USAGE)
    from vfp.config._compose import is_override

    if resume is None and config is not None and is_override(config) and not Path(config).exists():
        raise fail(f"{config!r} looks like an override: give the experiment CONFIG first", EXIT_USAGE)
    if resume is not None and config is not None:
        raise fail(
            "with --resume the run's saved config is used: give only KEY=VALUE overrides, not a CONFIG", EXIT_USAGE
        )
    if resume is not None and not resume.exists():
        raise fail(f"--resume {resume}: no such run directory or checkpoint", EXIT_USAGE)
    if resume is not None and run_dir is not None and run_dir_of(resume).resolve() != run_dir.resolve():
        raise fail("--run-dir and --resume name different runs; --resume continues in its own directory", EXIT_USAGE)
    derived = [*overrides]
    if max_steps is not None:
        derived.append(f"training.max_steps={max_steps}")
    if seed is not None:
        derived.append(f"seed={seed}")
    if device is not None:
        derived.append(f"device={device}")

    if seeds is not None or parallel > 1:
        from vfp.cli._seeds import train_seeds

        raise typer.Exit(train_seeds(config, derived, seeds, seed, resume, run_dir, parallel, nproc, progress))

    # everything up to here needs no torch, so that usage and config errors are reported at once
    host = get_host()  # resolved once here; everything below receives it
    source: Path | None = None
    if resume is None:
        assert config is not None
        with config_errors():
            experiment, source = _load_config(config, derived, host)
        target = run_dir if run_dir is not None else default_run_dir(experiment.name or source.stem)
        if holds_a_run(target):
            raise fail(
                f"{target} already holds a run (it has checkpoints); continue it with `vfp train --resume {target}` "
                "or choose another --run-dir",
                EXIT_USAGE,
            )
    else:
        target = run_dir_of(resume)

    if nproc is not None and nproc > 1 and not under_torchrun():
        raise typer.Exit(_launch(config, derived, target, resume, nproc, progress, host))

    from vfp.engine import CheckpointError, RunDirectoryError, TrainOptions
    from vfp.engine import train as run_training
    from vfp.engine.building import ComponentBuildError
    from vfp.engine.resume import prepare_resume

    resume_point = None
    if resume is not None:
        with config_errors():
            try:
                experiment, resume_point = prepare_resume(resume, derived, host)
            except CheckpointError as exc:
                raise fail(str(exc)) from None
            except RunDirectoryError as exc:  # config.yaml edited by hand: refused with what differs
                raise fail(str(exc), EXIT_USAGE) from None
    is_main = ProcessPlacement.from_environment().is_main
    if is_main:
        verb = f"resuming {resume_point.path} (step {resume_point.step})" if resume_point else "training"
        err().print(f"{verb} in [bold]{escape(target)}[/]", markup=True, highlight=False)
    options = TrainOptions(
        run_dir=target,
        resume=resume_point,
        config_source=source,
        command=["vfp", *sys.argv[1:]],
        progress=progress,  # type: ignore[arg-type]  # checked against PROGRESS_MODES above
        host=host,
    )
    try:
        with config_errors():
            result = run_training(experiment, options)
    except RunDirectoryError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        raise typer.Exit(_report_stopped_at_once(exc, target)) from None
    except (ComponentBuildError, PluginError, CheckpointError) as exc:
        raise fail(str(exc)) from None
    except typer.Exit:  # a config error found while building (already reported by config_errors)
        raise
    except Exception as exc:
        if getattr(exc, "vfp_exit_code", None) == EXIT_USAGE:  # a plugin's bad-input error (e.g. a DataError)
            raise fail(str(exc), EXIT_USAGE) from None
        err().print(traceback.format_exc(), markup=False, highlight=False)
        raise fail(f"training failed: {type(exc).__name__}: {exc}") from None
    if result.status == "failed" and is_main:
        err().print(f"[bold red]error:[/] {escape(result.message)}", markup=True, highlight=False)
    raise typer.Exit(result.exit_code)


def _report_stopped_at_once(exc: KeyboardInterrupt, run_dir: Path) -> int:
    """Report a run stopped at once (a second Ctrl-C, or a KeyboardInterrupt raised inside it); 130."""
    from vfp.engine import StoppedAtOnce

    why = f" ({exc})" if str(exc) else ""
    if isinstance(exc, StoppedAtOnce) and exc.checkpoint is not None:
        kept = (
            f"the newest checkpoint is {exc.checkpoint} (step {exc.checkpoint_step}); "
            f"resume with: vfp train --resume {run_dir}"
        )
    else:
        kept = "no checkpoint was written"
    step = f" at step {exc.step}" if isinstance(exc, StoppedAtOnce) else ""
    err().print(f"[bold red]stopped at once[/]{escape(step + why)}; {escape(kept)}", markup=True, highlight=False)
    return 130


def _launch(
    config: str | None,
    derived: list[str],
    run_dir: Path,
    resume: Path | None,
    nproc: int,
    progress: str,
    host: PluginHost,
) -> int:
    """Re-run this command in ``nproc`` processes through torchrun (with the run directory fixed)."""
    from vfp.engine.distributed import launch_with_torchrun

    args = ["train"]
    if config is not None:
        args.append(config)
    args.extend(derived)
    args += ["--resume", str(resume)] if resume is not None else ["--run-dir", str(run_dir)]
    args += ["--progress", progress]
    disabled = ",".join(sorted(host.disabled))
    if disabled:
        os.environ["VFP_DISABLE_PLUGINS"] = disabled
    err().print(f"launching {nproc} processes with torchrun", highlight=False)
    return launch_with_torchrun(nproc, args)


def evaluate(
    location: Path = typer.Argument(..., help="A run directory (its latest checkpoint) or a checkpoint file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object of metrics on stdout."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Integration steps for sampling actions."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default: the run's device)."),
    max_batches: int | None = typer.Option(None, "--max-batches", min=1, help="Limit the held-out batches."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest, best or a step number (run directories)."),
    env: str | None = typer.Option(
        None, "--env", help="Roll the policy out in this env component (see `vfp plugins list`) instead."
    ),
    episodes: int | None = typer.Option(
        None, "--episodes", min=1, help="With --env: episodes (default: the run's evaluation.episodes, else 50)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="With --env: the episodes' seed (default: the run's evaluation.seed)."
    ),
    video: Path | None = typer.Option(
        None, "--video", help="With --env: write the first episodes to this folder as MP4 (GIF without an encoder)."
    ),
    video_episodes: int = typer.Option(4, "--video-episodes", min=1, help="With --video: how many episodes."),
) -> None:
    """Evaluate a checkpoint's policy (EMA weights when the run kept them) on held-out data, or in an env (--env)."""
    if not location.exists():
        raise fail(f"{location}: no such run directory or checkpoint", EXIT_USAGE)
    if env is not None:
        _evaluate_in_env(location, env, checkpoint, episodes, steps, seed, device, video, video_episodes, as_json)
        return
    if video is not None or episodes is not None or seed is not None:
        raise fail("--episodes, --seed and --video need --env NAME (a closed-loop rollout)", EXIT_USAGE)
    from vfp.engine import CheckpointError, evaluate_checkpoint
    from vfp.engine.building import ComponentBuildError
    from vfp.policy.loading import PolicyLoadError, resolve_checkpoint

    try:
        if checkpoint != "latest":
            location = resolve_checkpoint(location, checkpoint)
        with config_errors():
            report = evaluate_checkpoint(location, steps=steps, device=device, max_batches=max_batches, host=get_host())
    except (CheckpointError, ComponentBuildError, PluginError, PolicyLoadError, ValueError) as exc:
        raise fail(str(exc)) from None
    except typer.Exit:
        raise
    except Exception as exc:
        err().print(traceback.format_exc(), markup=False, highlight=False)
        raise fail(f"evaluation failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from None
    if not report.metrics:
        raise fail(
            f"nothing to evaluate in {report.checkpoint}: the data has no held-out split and the trainer "
            "reports no metrics of its own"
        )
    err().print(
        f"evaluated {report.checkpoint} (step {report.step}, {report.weights} weights)", highlight=False, markup=False
    )
    if as_json:
        print_json(dict(report.metrics))
        return
    from rich.table import Table

    from vfp.cli._common import out

    table = Table("metric", "value", title=f"evaluation at step {report.step}")
    for key, value in report.metrics.items():
        table.add_row(key, f"{value:.6g}")
    out().print(table)


def _evaluate_in_env(
    location: Path,
    env: str,
    checkpoint: str,
    episodes: int | None,
    steps: int | None,
    seed: int | None,
    device: str | None,
    video: Path | None,
    video_episodes: int,
    as_json: bool,
) -> None:
    """``vfp eval RUN --env NAME``: the policy rolled out through the deployment runtime."""
    from vfp.envs import EnvError
    from vfp.envs.evaluate import evaluate_saved_policy
    from vfp.policy import PolicyError

    try:
        report = evaluate_saved_policy(
            location,
            env,
            checkpoint=checkpoint,
            episodes=episodes,
            steps=steps,
            seed=seed,
            device=device or "auto",
            video_dir=video,
            video_episodes=video_episodes if video is not None else 0,
            host=get_host(),
        )
    except (EnvError, PolicyError, PluginError, ValueError) as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        err().print(traceback.format_exc(), markup=False, highlight=False)
        raise fail(f"evaluation failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from None
    err().print(
        f"evaluated {report.checkpoint} (step {report.step}, {report.weights} weights) in env {report.env!r}",
        highlight=False,
        markup=False,
    )
    for path in report.videos:
        err().print(f"wrote {path}", highlight=False, markup=False)
    if as_json:
        print_json(dict(report.metrics))
        return
    from rich.table import Table

    from vfp.cli._common import out

    table = Table("metric", "value", title=f"{report.env} at step {report.step}")
    for key, value in report.metrics.items():
        table.add_row(key, f"{value:.6g}")
    out().print(table)
