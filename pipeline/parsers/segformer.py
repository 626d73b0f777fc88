"""SegFormer face parsing (paper 4.1): `SegformerForSemanticSegmentation` and its image processor
loaded from a local folder (e.g. a CelebAMask-HQ checkpoint such as jonathandinu/face-parsing,
downloaded by the user), its 19 labels mapped to our canonical ids by name from `config.id2label`.

A batch is preprocessed as the model's own processor says (its size, resampling and statistics;
done in torch on the model's device, `pipeline.annotate.pixel_batch`), run in one forward in bf16
on a GPU, and the logits are upsampled bilinearly to each image's size before the
argmax, so label edges follow the image rather than the 128 px logit grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.annotate import pixel_batch
from pipeline.device import resolve_device
from pipeline.labels import id_lookup
from pipeline.parsers.base import FaceParser
from pipeline.stage import Reject


class SegformerParser(FaceParser):
    name = "segformer"
    worker_local = ("_model", "_processor", "_lut")

    def __init__(self, params) -> None:
        self.params = params
        self._model = None
        self._processor = None
        self._lut = None

    def setup(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoImageProcessor, SegformerForSemanticSegmentation

        folder = Path(self.params.segformer_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"segment.segformer_dir {folder} has no config.json (a SegFormer folder)")
        device, dtype = resolve_device(self.params.device, self.params.dtype)
        model = SegformerForSemanticSegmentation.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self._attach(model.to(device).eval(), AutoImageProcessor.from_pretrained(folder, local_files_only=True))

    @classmethod
    def from_model(cls, params, model, image_processor) -> "SegformerParser":
        """A parser around a model already in memory (bench/annotate.py's random B5)."""
        parser = cls(params)
        parser._attach(model, image_processor)
        return parser

    def _attach(self, model, image_processor) -> None:
        import torch

        self._model, self._processor = model, image_processor
        lookup = id_lookup(model.config.id2label)  # KeyError names a label we cannot map
        lut = np.zeros(max(lookup) + 1, np.uint8)
        for src, dst in lookup.items():
            lut[src] = dst
        self._lut = torch.as_tensor(lut, device=model.device)
        if model.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if self.params.compile:
                model.forward = torch.compile(model.forward, dynamic=False)

    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray | Reject]:
        import torch
        import torch.nn.functional as F

        self.setup()
        model = self._model
        with torch.inference_mode():
            pixels = pixel_batch(list(images), self._processor, model.device, model.dtype)
            logits = model(pixel_values=pixels).logits  # (B, 19, H/4, W/4)
            out = []
            sizes = {img.shape[:2] for img in images}
            if len(sizes) == 1:  # upsampling in chunks: one call on 128 x 19 x 1024^2 logits passes INT_MAX
                (h, w), = sizes
                chunk = max(1, (2**31 - 1) // (logits.shape[1] * h * w) // 2)
                ids = []
                for part in logits.split(chunk):
                    up = F.interpolate(part.float(), size=(h, w), mode="bilinear", align_corners=False)
                    ids.append(self._lut[up.argmax(1)].cpu().numpy())
                ids = np.concatenate(ids)
                return [ids[i] for i in range(len(images))]
            for i, img in enumerate(images):
                up = F.interpolate(logits[i : i + 1].float(), size=img.shape[:2], mode="bilinear", align_corners=False)
                out.append(self._lut[up.argmax(1)[0]].cpu().numpy())
        return out
