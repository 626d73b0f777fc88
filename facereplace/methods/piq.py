"""The trained model: `PiQPerfectPipeline` from `replace.model_dir`, loaded as `piq sample` loads
it (`train.sampler.load_sampler`: bf16, compiled, fused q/k/v, channels-last on a GPU; fp32
eager on a CPU). Source and driving go in through training's resize rule (`train.data.to_tensor`)
at the model's resolution; the output comes back to the crop's size by the same rule."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from facereplace.errors import PhotoError
from pipeline.config.replace import ReplaceParams
from pipeline.faces.crop import resize_square


def weights_hash(model_dir: Path) -> str:
    """sha256 over the pipeline's config files and every weights file (names and bytes), in a
    fixed order: the provenance's model hash. Computed once per load."""
    h = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt"))
    for p in files:
        h.update(str(p.relative_to(model_dir)).encode() + b"\0")
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


class PiQMethod:
    name = "piq"
    reads_driving = True  # the model takes REF's inner face cut with the training mask

    def __init__(self, params: ReplaceParams, sample=None, device: str | None = None) -> None:
        import torch

        from pipeline.config.train import SampleParams
        from train.sampler import load_sampler

        model_dir = Path(params.model_dir)
        if not (model_dir / "model_index.json").is_file():
            raise PhotoError("no_model", f"no trained model at {model_dir} (replace.model_dir; run `piq train`), "
                                         f"or use --method classical")
        sp = dataclasses.replace(sample or SampleParams(), model_dir=str(model_dir),
                                 num_inference_steps=params.num_inference_steps, guidance_scale=params.guidance_scale)
        self.pipe = load_sampler(sp, device or params.device)
        self.steps, self.guidance, self.seed = params.num_inference_steps, params.guidance_scale, params.seed
        self.model_hash = weights_hash(model_dir)
        self._torch = torch

    def make_face(self, source: np.ndarray, reference: np.ndarray, driving: np.ndarray,
                  caption: str = "") -> tuple[np.ndarray, np.ndarray | None]:
        from train.data import to_tensor

        torch = self._torch
        res = self.pipe.config.resolution
        gen = torch.Generator().manual_seed(self.seed)
        out = self.pipe(to_tensor(source, res)[None], to_tensor(driving, res)[None], [caption],
                        num_inference_steps=self.steps, guidance_scale=self.guidance, generator=gen,
                        output_type="np").images[0]
        return resize_square(np.asarray(out, np.uint8), source.shape[0]), None
