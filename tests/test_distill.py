"""`piq distill` on the tiny model: the 4-step student follows the teacher's 50-step guided output
more closely than the teacher's own 4 steps do (train/distill.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams
from train.backbones import tiny_components
from train.data import make_train_loader
from train.distill import ddim_step, student_scheduler
from train.loop import make_accelerator, train
from train.model import PiQModel, export_pipeline
from train.piq_pipeline import PiQPerfectPipeline

torch.set_flush_denormal(True)
RES = 32
REPO = Path(__file__).resolve().parents[1]


def trained_teacher(tmp: Path, shards: Path) -> Path:
    """A tiny model trained a few steps on the tiny release, exported as `piq train` does."""
    data = DataParams(resolution=RES, pairs_per_set=2, caption_dropout=0.1)
    tp = TrainParams(batch_size=2, effective_batch=2, max_steps=15, lr=1e-3, mixed_precision="fp32",
                     gradient_checkpointing=False, keep_checkpoints=0, validate_every=1000,
                     checkpoint_dir=str(tmp / "tckpt"), reports_dir=str(tmp / "treports"))
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", RES)
    loader, stream = make_train_loader(data, shards, tp.batch_size, seed=0)
    result = train(model, loader, stream, tp, 0, make_accelerator(tp))
    return export_pipeline(model, model.unet, tmp / "teacher", result.ema)


def params_file(tmp: Path, shards: Path, teacher: Path, **distill) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(shards=str(shards), resolution=RES, pairs_per_set=2)
    params["train"].update(num_workers=0)
    params["distill"].update(teacher_dir=str(teacher), out_dir=str(tmp / "student"), reports_dir=str(tmp / "dreports"),
                             checkpoint_dir=str(tmp / "dckpt"), **distill)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_ddim_step_is_exact_on_its_own_prediction() -> None:
    """An exact epsilon moves a noised sample to the same data point noised at the next level."""
    x0, eps = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    sched = student_scheduler(tiny_components("sdxl").scheduler.config)
    a, a_prev = sched.alphas_cumprod[700], sched.alphas_cumprod[300]
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    assert torch.allclose(ddim_step(x, eps, a, a_prev, "epsilon"), a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, atol=1e-5)
    assert torch.allclose(ddim_step(x, eps, a, torch.tensor(1.0), "epsilon"), x0, atol=1e-4)


@pytest.mark.slow
def test_student_follows_the_teacher_better_than_its_own_few_steps(tmp_path: Path, tiny_shards: Path) -> None:
    from stages.distill import main

    teacher_dir = trained_teacher(tmp_path, tiny_shards)
    path = params_file(tmp_path, tiny_shards, teacher_dir, max_steps=30, batch_size=2, effective_batch=2,
                       teacher_steps=48, lr=1e-3)
    assert main(argparse.Namespace(params=str(path))) == 0
    student = PiQPerfectPipeline.from_pretrained(tmp_path / "student", local_files_only=True)
    teacher = PiQPerfectPipeline.from_pretrained(teacher_dir, local_files_only=True)
    assert type(student.scheduler).__name__ == "DDIMScheduler" and student.config.resolution == RES
    data = DataParams(resolution=RES, pairs_per_set=2, caption_dropout=0.0)
    batch = next(iter(make_train_loader(data, tiny_shards, 4, seed=5)[0]))

    def run(pipe, steps, guidance):
        pipe.set_progress_bar_config(disable=True)
        return pipe(batch["source"], batch["driving"], batch["caption"], num_inference_steps=steps,
                    guidance_scale=guidance, generator=torch.Generator().manual_seed(3), output_type="pt").images

    reference = run(teacher, 50, 1.5)
    teacher_4 = (run(teacher, 4, 1.5) - reference).pow(2).mean().item()
    student_4 = (run(student, 4, 1.0) - reference).pow(2).mean().item()
    print(f"MSE to the teacher's 50 guided steps: teacher 4 steps {teacher_4:.5f}, student 4 steps {student_4:.5f}")
    assert student_4 < teacher_4


def _tiny_distill_model():
    from train.distill import DistillModel

    return DistillModel(tiny_components("sdxl", seed=0), "spatial", RES, student_steps=2, teacher_steps=4,
                        guidance_scale=1.5)


def _batch(device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    image = lambda: (torch.rand(1, 3, RES, RES, generator=g) * 2 - 1).to(device)  # noqa: E731
    return {"source": image(), "driving": image(), "caption": ["a face"]}


def test_the_teachers_starting_noise_is_drawn_on_the_generators_device(monkeypatch) -> None:
    """The loop's generator lives on the training device (`train.rng_device: auto`): the teacher's
    trajectory draws its noise there, as PiQModel.noisy_inputs does (on a GPU `piq distill` failed
    with "Expected a 'cpu' device type for generator but found 'cuda'", issue 29's acceptance run)."""
    model = _tiny_distill_model()
    seen = []
    real = torch.randn

    def randn(*args, **kwargs):
        if kwargs.get("generator") is not None:
            seen.append((kwargs["generator"].device, kwargs.get("device")))  # the device named, not implied
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "randn", randn)
    generator = torch.Generator().manual_seed(1)
    _, states = model.teacher_trajectory(_batch("cpu"), generator)
    assert seen and all(d is not None and torch.device(d) == g for g, d in seen), seen
    assert len(states) == 3 and torch.isfinite(states[-1]).all()


@pytest.mark.gpu
def test_a_distillation_step_runs_with_the_loops_gpu_generator() -> None:
    model = _tiny_distill_model()
    for part in (model.unet, model.teacher, model.comps.vae, model.comps.text_encoder, model.comps.text_encoder_2):
        part.to("cuda")
    loss = model.loss(_batch("cuda"), torch.Generator(device="cuda").manual_seed(1))
    assert loss.device.type == "cuda" and torch.isfinite(loss)
