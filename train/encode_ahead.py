"""`train.encode_ahead`: the next micro-step's driving images are encoded on a side CUDA stream
while the current micro-step's UNet runs.

Why: with the latent cache (`train/latents.py`) the driving face's VAE encode is the largest part
of a training step beyond the UNet's forward and backward (on the H200, 67 ms of the 835 ms of a
micro-step of 16 were not the UNet's, most of it this encode). It cannot be cached: the driving
face is augmented per step (paper 4.1). On its own stream the encode of micro-step k+1 can run in
the gaps micro-step k's kernels leave, instead of in front of k+1's forward.

What is kept: the same images, the same frozen encoder, and the posterior sample still drawn in
the step from the loop's generator, in the same order: only when the VAE's moments are computed
changes. Exact resume: nothing is fetched ahead across an optimizer step's end (where checkpoints
are written), so a checkpoint never follows a batch fetched but not trained, and the first
micro-step of each optimizer step encodes its own driving images. On a CPU there is no second
stream and the encode runs inline, giving the same values.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Optional

import torch

from pipeline.device import is_cuda
from train.latents import encode_moments


class EncodedAhead:
    """Driving-image moments computed on `stream`; `wait()` hands them to the current stream."""

    def __init__(self, moments: torch.Tensor, stream: Optional[torch.cuda.Stream]) -> None:
        self.moments, self.stream = moments, stream
        self.event = None
        if stream is not None:
            self.event = torch.cuda.Event()
            self.event.record(stream)

    def wait(self) -> torch.Tensor:
        if self.event is not None:
            current = torch.cuda.current_stream(self.moments.device)
            current.wait_event(self.event)
            self.moments.record_stream(current)  # its memory is not reused before this stream is done with it
        return self.moments


class DrivingAhead:
    """Batches of `batches`, with the driving images of every micro-step but an optimizer step's
    first encoded during the micro-step before it (`batch["driving_moments"]`, read by
    `PiQModel.cached_latents`). Only batches with cached source/target moments are encoded ahead
    (without the cache all three images are encoded together in the step)."""

    def __init__(self, batches: Iterable[dict], model: Any, accumulation: int) -> None:
        self.batches, self.model, self.accumulation = batches, model, accumulation
        device = model.device
        self.stream = torch.cuda.Stream(device) if is_cuda(device) else None
        self.ahead = 0  # batches encoded ahead so far (reported)

    def _encode(self, batch: dict) -> None:
        if "source_moments" not in batch:
            return
        model = self.model
        with torch.no_grad(), (torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()):
            pixels = batch["driving"].to(model.device, non_blocking=True)
            moments = encode_moments(model.comps.vae, pixels, model.vae_chunk)
        batch["driving_moments"] = EncodedAhead(moments, self.stream)
        self.ahead += 1

    def __iter__(self) -> Iterator[dict]:
        it = iter(self.batches)
        current = next(it, None)
        micro = 0
        while current is not None:
            ends_step = (micro + 1) % self.accumulation == 0
            following = None if ends_step else next(it, None)
            if following is not None:
                self._encode(following)  # queued before `current`'s forward: they overlap on the GPU
            yield current
            micro += 1
            current = following if not ends_step else next(it, None)

