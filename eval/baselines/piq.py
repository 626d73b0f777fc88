"""The trained PiQPerfect model (paper A.1 sampling: 50 steps, guidance 1.5), batched, on the
GPU when there is one, loaded exactly as `piq sample` loads it (`train.sampler.load_replacer`:
bf16, compiled, fused q/k/v on a GPU; fp32 eager on a CPU). Inputs are the test set's source
and driving input (the inner face made exactly as in training), uint8 crops that the model
converts itself (`PiQPerfectPipeline.replace_crops`); outputs come back at the test set's size.
This is the evaluation's adapter to it."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.baselines import Unavailable
from eval.data import Triplet


class PiQMethod:
    name = "piq"

    def __init__(self, params) -> None:
        from train.sampler import is_pipeline_folder, load_replacer

        model_dir = Path(params.model_dir)
        if not is_pipeline_folder(model_dir):
            raise Unavailable(f"no trained model at {model_dir} (run `piq train`)")
        self.pipe = load_replacer(model_dir, params.device)
        self.p = params

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]:
        # seeded by the batch's first pair: outputs do not depend on which data set ran before
        seed = self.p.seed * 1_000_003 + zlib.crc32(batch[0].pair_id.encode())
        return self.pipe.replace_crops([t.source for t in batch], [t.driving_input for t in batch],
                                       [t.caption for t in batch], seed,
                                       num_inference_steps=self.p.num_inference_steps,
                                       guidance_scale=self.p.guidance_scale)
