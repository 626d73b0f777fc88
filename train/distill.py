"""A few-step student of the trained model: phased trajectory distillation, guidance folded in.

The 1000 training timesteps are cut into `student_steps` phases at the DDIM timesteps of the
student's sampler (trailing spacing: 999, 749, 499, 249 for 4 steps, then clean). For each
batch of training conditions (source, driving, caption) the frozen teacher solves the
probability-flow ODE from pure noise with `teacher_steps` deterministic DDIM steps *with
classifier-free guidance* (the paper's negative branch), and its states at the phase edges are
kept. The student, run without guidance, learns to cross each phase in one DDIM step: from the
teacher's state at an edge to the teacher's state at the next edge (the phases of Phased
Consistency Models, Wang et al. 2024, with the teacher's own ODE solution as the target in
place of a target network, which converges in a few hundred steps instead of thousands). So
the student's 4-step, unguided sample follows the teacher's 50-step guided trajectory, and
costs 4 UNet passes instead of 100.

`DistillModel` is a `PiQModel` whose `loss` is this objective: `train.loop.train` trains it
unchanged (accumulation, resume, checkpoints, divergence guard).
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel

from train.backbones import Components
from train.model import PiQModel


def student_scheduler(config) -> DDIMScheduler:
    """The student's sampler: deterministic DDIM, trailing spacing (its first step starts from
    pure noise at t=999), final step to the clean image, no clipping."""
    return DDIMScheduler.from_config(config, timestep_spacing="trailing", set_alpha_to_one=True, steps_offset=0,
                                     clip_sample=False, thresholding=False)


def ddim_step(x: torch.Tensor, out: torch.Tensor, a_t: torch.Tensor, a_prev: torch.Tensor,
              prediction_type: str) -> torch.Tensor:
    """Deterministic DDIM update from cumulative alpha `a_t` to `a_prev` (broadcast per sample)."""
    if prediction_type == "v_prediction":
        x0 = a_t.sqrt() * x - (1 - a_t).sqrt() * out
        eps = a_t.sqrt() * out + (1 - a_t).sqrt() * x
    elif prediction_type == "epsilon":
        eps = out
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    else:
        raise ValueError(f"distillation supports epsilon / v_prediction teachers, not {prediction_type!r}")
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


class DistillModel(PiQModel):
    """`unet` is the student (a copy of the teacher's UNet, trained); `teacher` is frozen."""

    def __init__(self, comps: Components, concat: str, resolution: int, student_steps: int, teacher_steps: int,
                 guidance_scale: float, vae_chunk: int = 16) -> None:
        teacher: UNet2DConditionModel = comps.unet
        student = copy.deepcopy(teacher)
        student.requires_grad_(True)
        super().__init__(Components(comps.family, student, comps.vae, comps.text_encoder, comps.tokenizer,
                                    comps.scheduler, comps.text_encoder_2, comps.tokenizer_2),
                         concat, resolution, vae_chunk)
        self.teacher = teacher
        self.teacher.requires_grad_(False).eval()
        self.sampler = student_scheduler(comps.scheduler.config)
        self.sampler.set_timesteps(student_steps)
        self.edges = [int(t) for t in self.sampler.timesteps] + [-1]  # -1: the clean image
        self.sub_steps = teacher_steps // student_steps
        self.guidance_scale = guidance_scale

    def frozen_parts(self) -> list[torch.nn.Module]:
        return super().frozen_parts() + ([self.teacher] if hasattr(self, "teacher") else [])

    def alpha(self, t: int | torch.Tensor) -> torch.Tensor:
        """Cumulative alpha at integer timestep(s); 1 at t = -1."""
        a = torch.cat([self.sampler.alphas_cumprod.new_ones(1), self.sampler.alphas_cumprod]).to(self.device)
        return a[torch.as_tensor(t, device=self.device) + 1]

    def _predict(self, unet, source, driving, x, t, embeds, pooled) -> torch.Tensor:
        from train.conditioning import predict_target

        steps = torch.full((x.shape[0],), int(t), device=self.device) if not torch.is_tensor(t) else t
        return predict_target(unet, self.comps.family, source, driving, x, steps, embeds, pooled, self.resolution,
                              self.concat).float()

    @torch.no_grad()
    def teacher_trajectory(self, batch: dict, generator: Optional[torch.Generator] = None):
        """Conditions, and the teacher's guided DDIM states at every phase edge (first: noise)."""
        source, driving = self.encode(torch.cat([batch["source"], batch["driving"]]), generator).chunk(2)
        n = source.shape[0]
        text = self.text(self.device)
        embeds, pooled = text(list(batch["caption"]))
        neg_e, neg_p = text([""] * n)
        zero = self.encode(torch.full_like(batch["driving"], -1.0), generator)  # the loop's seeded draws: a rerun is identical
        g_src, g_drv = torch.cat([source, source]), torch.cat([zero, driving])
        g_e = torch.cat([neg_e, embeds])
        g_p = None if pooled is None else torch.cat([neg_p, pooled])
        # drawn on the generator's device, as PiQModel.noisy_inputs draws: the loop's generator lives on the GPU
        # (`train.rng_device: auto`), a CPU one (tests, rng_device cpu) draws on the CPU as before
        draw_on = generator.device if generator is not None else self.device
        x = torch.randn(source.shape, generator=generator, dtype=torch.float32, device=draw_on).to(self.device)
        states, pred_type = [x], self.sampler.config.prediction_type
        for start, end in zip(self.edges[:-1], self.edges[1:]):
            grid = torch.linspace(start, end, self.sub_steps + 1).round().long().tolist()
            for t, t_prev in zip(grid[:-1], grid[1:]):
                out = self._predict(self.teacher, g_src, g_drv, torch.cat([x, x]), t, g_e, g_p)
                uncond, cond = out.chunk(2)
                guided = uncond + self.guidance_scale * (cond - uncond)
                x = ddim_step(x, guided, self.alpha(t), self.alpha(t_prev), pred_type)
            states.append(x)
        return (source, driving, embeds, pooled), states

    def loss(self, batch: dict, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Mean over phases of || student's one DDIM step from an edge - teacher's next edge ||^2,
        all phases in one batched student call (per-sample timesteps)."""
        (source, driving, embeds, pooled), states = self.teacher_trajectory(batch, generator)
        k = len(self.edges) - 1
        rep = lambda v: None if v is None else torch.cat([v] * k)  # noqa: E731
        x = torch.cat(states[:-1])
        target = torch.cat(states[1:])
        n = source.shape[0]
        t = torch.tensor(self.edges[:-1], device=self.device).repeat_interleave(n)
        t_next = torch.tensor(self.edges[1:], device=self.device).repeat_interleave(n)
        out = self._predict(self.unet, rep(source), rep(driving), x, t, rep(embeds), rep(pooled))
        shape = (-1, 1, 1, 1)
        step = ddim_step(x, out, self.alpha(t).view(shape), self.alpha(t_next).view(shape),
                         self.sampler.config.prediction_type)
        return F.mse_loss(step, target)
