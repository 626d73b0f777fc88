"""The trained model: `PiQPerfectPipeline` from `replace.model_dir`, loaded as `piq sample` loads
it (`train.sampler.load_replacer`: bf16, compiled, fused q/k/v, channels-last on a GPU; fp32
eager on a CPU). The model does its own conversion of the uint8 crops
(`PiQPerfectPipeline.replace_crops`: training's resize rule at the model's resolution, the
output back to the crop's size by the same rule); this is the photo tool's adapter to it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipeline.config.replace import ReplaceParams
from pipeline.rejection import Reject


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
        from train.sampler import is_pipeline_folder, load_replacer

        model_dir = Path(params.model_dir)
        if not is_pipeline_folder(model_dir):
            raise Reject("no_model", f"no trained model at {model_dir} (replace.model_dir; run `piq train`), "
                                     f"or use --method classical")
        self.pipe = load_replacer(model_dir, device or params.device, sample)
        self.steps, self.guidance, self.seed = params.num_inference_steps, params.guidance_scale, params.seed
        self.model_hash = weights_hash(model_dir)

    def make_face(self, source: np.ndarray, reference: np.ndarray, driving: np.ndarray,
                  caption: str = "") -> tuple[np.ndarray, np.ndarray | None]:
        (out,) = self.pipe.replace_crops([source], [driving], [caption], self.seed,
                                         num_inference_steps=self.steps, guidance_scale=self.guidance)
        return out, None
