"""Reflow distillation (``flow.distill``) and the Sinkhorn term on the evaluation sampler (``alignment_steps``,
``alignment_start_step``, ``alignment_warmup_steps``): config validation, the teacher's coupling, errors that
name the key, every trainer's training step with a teacher, and the alignment schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from flow_policy_helpers import INFO, STATE, bimodal_batch, build, naive_experiment, save_as_run, vfp_experiment
from test_cfg_vqvae_trainer import bimodal_batch as cfg_batch
from test_cfg_vqvae_trainer import toy_trainer as cfg_trainer

from vfp._plugins import get_host
from vfp.config import ConfigError, validate_data
from vfp.protocols import DataInfo
from vfp_il_components.flow import ReflowTeacher, TeacherError, one_step, sample_flow, sample_noise, training_pair
from vfp_il_components.settings import DistillSettings, FlowSettings


def _vfp(experts: int = 1, alignment: bool = True, **trainer: Any) -> dict[str, Any]:
    data = vfp_experiment(experts=experts, alignment=alignment)
    data["trainer"].update(trainer)
    return data


@pytest.fixture(scope="module")
def naive_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) naive flow-matching policy on the bimodal problem, saved as a run."""
    torch.manual_seed(0)
    return save_as_run(build(naive_experiment()), tmp_path_factory.mktemp("teacher") / "run")


# -- config ---------------------------------------------------------------------------------------------
def test_distill_defaults() -> None:
    settings = DistillSettings(teacher="runs/teacher")
    assert (settings.teacher_steps, settings.checkpoint) == (10, "latest")
    assert FlowSettings().distill is None


@pytest.mark.parametrize(
    ("distill", "message"),
    [
        ({}, "trainer.flow.distill.teacher"),
        ({"teacher": ""}, "teacher"),
        ({"teacher": "run", "teacher_steps": 0}, "teacher_steps"),
        ({"teacher": "run", "checkpoint": "last"}, "checkpoint"),
        ({"teacher": "run", "teacher_step": 4}, "teacher_step"),
    ],
)
def test_invalid_distill_settings_are_config_errors(distill: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_data(naive_experiment(flow={"distill": distill}), get_host().registry, "<test>")


def test_distill_validates_for_every_flow_trainer_without_reading_the_teacher() -> None:
    """The teacher is read when training starts, never by validation (a saved config must stay loadable)."""
    registry = get_host().registry
    flow = {"distill": {"teacher": "/nonexistent/teacher", "teacher_steps": 4, "checkpoint": "best"}}
    validate_data(naive_experiment(flow=flow), registry, "<test>")
    validate_data(_vfp(experts=2, flow=flow), registry, "<test>")
    validate_data(_vfp(flow=flow), registry, "<test>")


@pytest.mark.parametrize(
    ("trainer", "alignment", "message"),
    [
        ({"alignment_steps": 0}, True, "alignment_steps"),
        ({"alignment_warmup_steps": -1}, True, "alignment_warmup_steps"),
        ({"alignment_steps": 2}, False, "trainer.alignment_steps: is set but the experiment has no `alignment` loss"),
        ({"alignment_start_step": 5}, False, "trainer.alignment_start_step: is set but"),
    ],
)
def test_invalid_alignment_settings_are_config_errors(trainer: dict[str, Any], alignment: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_data(_vfp(alignment=alignment, **trainer), get_host().registry, "<test>")


def test_alignment_settings_validate() -> None:
    registry = get_host().registry
    config = validate_data(_vfp(alignment_steps=None, alignment_warmup_steps=50), registry, "<test>")
    assert config.trainer.alignment_steps is None  # type: ignore[union-attr]
    assert validate_data(_vfp(), registry, "<test>").trainer.alignment_steps == 1  # type: ignore[union-attr]


# -- the teacher ----------------------------------------------------------------------------------------
def _student(teacher: Path | str, stats: dict[str, dict[str, torch.Tensor]] | None = None, **distill: Any) -> Any:
    torch.manual_seed(1)
    info = INFO
    if stats:
        info = DataInfo(INFO.features, INFO.history, INFO.horizon, normalization=dict.fromkeys(stats, "mean_std"))
    return build(naive_experiment(flow={"distill": {"teacher": str(teacher), **distill}}), info=info, stats=stats)


def test_the_coupling_is_the_teacher_sampler_from_the_students_noise(naive_teacher: Path) -> None:
    from vfp import load_policy

    student = _student(naive_teacher, teacher_steps=3)
    batch = bimodal_batch(16, torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    x0, x1 = student.teacher.pairs(batch, noise_std=0.5)
    torch.manual_seed(7)
    eps = torch.randn(16, 2, 1)
    teacher = load_policy(naive_teacher, device="cpu", action_steps=1)
    expected = teacher.trainer.sample_actions({STATE: batch[STATE]}, 3, noise=eps)
    assert torch.equal(x0, 0.5 * eps)
    assert torch.allclose(x1, expected)
    assert not torch.allclose(x1, teacher.trainer.sample_actions({STATE: batch[STATE]}, 1, noise=eps))


def test_the_coupling_crosses_between_the_two_runs_normalizations(naive_teacher: Path) -> None:
    """A teacher trained without normalization, a student with mean_std statistics: observations reach the
    teacher in its units, and its chunks come back in the student's."""
    from vfp import load_policy

    stats = {
        STATE: {"mean": torch.tensor([0.5]), "std": torch.tensor([2.0])},
        "action": {"mean": torch.tensor([1.0]), "std": torch.tensor([4.0])},
    }
    student = _student(naive_teacher, stats=stats, teacher_steps=2)
    batch = bimodal_batch(8, torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    _, x1 = student.teacher.pairs(batch)
    torch.manual_seed(3)
    eps = torch.randn(8, 2, 1)
    teacher = load_policy(naive_teacher, device="cpu", action_steps=1)
    raw_state = batch[STATE] * 2.0 + 0.5
    raw_chunk = teacher.trainer.sample_actions({STATE: raw_state}, 2, noise=eps)
    assert torch.allclose(x1, (raw_chunk - 1.0) / 4.0, atol=1e-5)


def test_training_pairs_use_the_teacher_only_with_gradients(naive_teacher: Path) -> None:
    student = _student(naive_teacher)
    batch = bimodal_batch(8, torch.Generator().manual_seed(0))
    x0, actions, is_pad = training_pair(batch, student.config.flow, student.teacher)
    assert x0 is not None
    assert is_pad is None
    assert not torch.equal(actions, batch["action"])
    with torch.no_grad():  # validation losses: the demonstrations, the teacher is not needed
        x0, actions, is_pad = training_pair(batch, student.config.flow, student.teacher)
    assert x0 is None
    assert actions is batch["action"]
    assert is_pad is batch["action_is_pad"]
    assert training_pair(batch, FlowSettings(), None)[0] is None


def test_a_missing_teacher_is_a_config_error_at_the_first_training_batch_only(tmp_path: Path) -> None:
    student = _student(tmp_path / "missing")  # building and sampling never need the teacher
    obs = {STATE: torch.zeros(4, 1, 1)}
    assert student.sample_actions(obs, 1).shape == (4, 2, 1)
    batch = bimodal_batch(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        student.compute_losses(batch)
    with pytest.raises(TeacherError, match=r"trainer\.flow\.distill\.teacher: cannot load the teacher .*missing"):
        student.compute_losses(batch)


def test_a_teacher_with_other_features_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    other = save_as_run(cfg_trainer(), tmp_path / "cfg")  # horizon 4, a 2-D state
    student = _student(other)
    with pytest.raises(TeacherError, match=r"trainer\.flow\.distill\.teacher: the teacher .* does not fit") as info:
        student.compute_losses(bimodal_batch(8, torch.Generator().manual_seed(0)))
    assert "chunks of 4 x 1 (horizon x action_dim), this run's are 2 x 1" in str(info.value)
    assert "observation 'observation.state' of shape (2,) (state), this run's is (1,) (state)" in str(info.value)


def test_reflow_teacher_reads_a_run_checkpoint_by_step(naive_teacher: Path) -> None:
    student = _student(naive_teacher, checkpoint="1")
    assert isinstance(student.teacher, ReflowTeacher)
    assert student.teacher.policy.metadata.step == 1
    with pytest.raises(TeacherError, match="no checkpoint at step 5"):
        _student(naive_teacher, checkpoint="5").teacher.policy  # noqa: B018 - the property loads


@pytest.mark.parametrize("kind", ["naive", "vfp", "vfp_single_expert", "cfg_vqvae"])
def test_every_trainer_trains_on_its_teachers_coupling(kind: str, tmp_path: Path) -> None:
    """A (self-)teacher of the same kind: one training step, finite loss, gradients to the student only."""
    distill = {"teacher": str(tmp_path / "teacher"), "teacher_steps": 2}
    if kind == "cfg_vqvae":
        teacher = cfg_trainer()
        student = cfg_trainer(flow={"distill": distill})
        batch = cfg_batch(32, torch.Generator().manual_seed(0))
    else:
        data = naive_experiment() if kind == "naive" else _vfp(experts=2 if kind == "vfp" else 1)
        torch.manual_seed(0)
        teacher = build(data)
        data["trainer"]["flow"] = {"distill": distill}
        torch.manual_seed(0)
        student = build(data)
        batch = bimodal_batch(32, torch.Generator().manual_seed(0))
    save_as_run(teacher, tmp_path / "teacher")
    terms, _ = student.compute_losses(batch)
    loss = sum(terms.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for module in student.context.models.values() for p in module.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    teacher_parameters = [
        p for module in student.teacher.policy.trainer.context.models.values() for p in module.parameters()
    ]
    assert all(p.grad is None for p in teacher_parameters)


# -- the alignment term on the evaluation sampler --------------------------------------------------------
def test_alignment_weight_follows_its_schedule() -> None:
    trainer = build(_vfp(alignment_start_step=10, alignment_warmup_steps=4))
    batch = bimodal_batch(16, torch.Generator().manual_seed(0))
    factors = []
    for step in (0, 9, 10, 11, 13, 100):
        trainer.context.step = step
        factors.append(trainer.alignment_factor())
    assert factors == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    trainer.context.step = 0
    terms, metrics = trainer.compute_losses(batch)
    assert "alignment" not in terms  # not computed before the start
    assert metrics["alignment_factor"] == 0.0
    trainer.context.step = 10
    torch.manual_seed(4)
    quarter = trainer.compute_losses(batch).terms["alignment"]
    trainer.context.step = 100
    torch.manual_seed(4)
    full = trainer.compute_losses(batch).terms["alignment"]
    assert torch.allclose(quarter, 0.25 * full)
    assert full > 0


@pytest.mark.parametrize(("alignment_steps", "num_steps", "steps"), [(1, 10, 1), (3, 10, 3), (None, 4, 4)])
def test_alignment_generates_with_the_evaluation_sampler(
    alignment_steps: int | None, num_steps: int, steps: int
) -> None:
    trainer = build(_vfp(alignment_steps=alignment_steps, flow={"num_steps": num_steps}))
    assert trainer.alignment_steps() == steps
    batch = bimodal_batch(16, torch.Generator().manual_seed(0))
    cond = trainer.encode_observation(batch)
    prior = trainer.prior(cond)
    torch.manual_seed(2)
    loss = trainer._alignment(batch, cond, prior, batch["action"])
    torch.manual_seed(2)
    z = trainer._reparameterized(prior)
    weights, _ = trainer._route(cond, z)
    x0 = sample_noise(tuple(batch["action"].shape), torch.device("cpu"))
    net = trainer.flow_net(cond, z, weights)
    generated = sample_flow(trainer.config.flow, net, x0, steps)
    state = batch[STATE].flatten(1)
    assert torch.allclose(loss, trainer.alignment(generated, batch["action"], state, state))
    if steps > 1:  # not the one-step chunks
        assert not torch.allclose(
            loss, trainer.alignment(one_step(trainer.config.flow, net, x0), batch["action"], state, state)
        )
    loss.backward()  # differentiable through every step
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.decoder.parameters())


def test_teacher_errors_name_the_file_and_line_of_the_key(tmp_path: Path) -> None:
    from vfp import ComponentKind
    from vfp.config import load_experiment
    from vfp.engine import TrainerContext
    from vfp.engine.building import build_loss, build_model_component

    data = naive_experiment(flow={"distill": {"teacher": str(tmp_path / "missing")}})
    path = tmp_path / "student.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "teacher:" in text)
    registry = get_host().registry
    config = load_experiment(str(path)).config
    cpu = torch.device("cpu")
    context = TrainerContext(
        config=config,
        info=INFO,
        normalization_stats={},
        device=cpu,
        build_model_fn=lambda name, dims: build_model_component(name, config.model[name], registry, dims, device=cpu),
        build_loss_fn=lambda name: build_loss(name, config, registry, cpu),
    )
    student = registry.load(ComponentKind.TRAINER, config.trainer.type)(config.trainer, context)
    with pytest.raises(TeacherError, match=rf"^{path}:{line}: trainer\.flow\.distill\.teacher: cannot load"):
        student.compute_losses(bimodal_batch(8, torch.Generator().manual_seed(0)))
    assert TeacherError.vfp_exit_code == 2  # `vfp train` prints it as bad input
