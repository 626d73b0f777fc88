"""The trained PiQPerfect model (paper A.1 sampling: 50 steps, guidance 1.5), batched, on the
GPU when there is one, loaded exactly as `piq sample` loads it (`train.sampler.load_sampler`:
bf16, compiled, fused q/k/v on a GPU; fp32 eager on a CPU). Inputs are the test set's source
and driving input (the inner face made exactly as in training), at the model's resolution;
outputs come back at the test set's."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.baselines import Unavailable
from eval.data import Triplet
from pipeline.faces.crop import resize_square


def to_model(images: Sequence[np.ndarray], resolution: int):
    import torch

    from train.data import to_tensor

    return torch.stack([to_tensor(i, resolution) for i in images])


class PiQMethod:
    name = "piq"

    def __init__(self, params) -> None:
        model_dir = Path(params.model_dir)
        if not (model_dir / "model_index.json").is_file():
            raise Unavailable(f"no trained model at {model_dir} (run `piq train`)")
        from pipeline.config.train import SampleParams
        from train.sampler import load_sampler

        self.pipe = load_sampler(SampleParams(model_dir=str(model_dir), num_inference_steps=params.num_inference_steps,
                                              guidance_scale=params.guidance_scale), params.device)
        self.p = params

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]:
        import torch

        res = self.pipe.config.resolution
        # seeded by the batch's first pair: outputs do not depend on which data set ran before
        generator = torch.Generator().manual_seed(self.p.seed * 1_000_003 + zlib.crc32(batch[0].pair_id.encode()))
        out = self.pipe(to_model([t.source for t in batch], res), to_model([t.driving_input for t in batch], res),
                        [t.caption for t in batch], num_inference_steps=self.p.num_inference_steps,
                        guidance_scale=self.p.guidance_scale, generator=generator, output_type="np").images
        images = []
        for t, o in zip(batch, out):
            o = np.asarray(o)
            o = (o * 255).round().clip(0, 255).astype(np.uint8) if o.dtype != np.uint8 else o
            size = t.source.shape[0]
            images.append(resize_square(o, size))
        return images
