"""SegFormer face parsing (paper 4.1): `SegformerForSemanticSegmentation` and its image processor
loaded from a local folder (e.g. a CelebAMask-HQ checkpoint such as jonathandinu/face-parsing,
downloaded by the user), its 19 labels mapped to our canonical ids by name from `config.id2label`.

The folder as published: `config.json`, `model.safetensors` (or `pytorch_model.bin`, or an fp16
variant), `preprocessor_config.json`. That release's processor config names the legacy class
`SegformerFeatureExtractor`, which transformers 5's `AutoImageProcessor` refuses; the config is
read here with `SegformerImageProcessor` itself (old and new keys: `size` as an int or a dict,
`reduce_labels` or `do_reduce_labels`), and a folder without one gets the processor's documented
defaults (512 x 512, bilinear, ImageNet mean / std). A label we cannot map, a weight that is
missing or mis-shaped, a truncated file: `WeightsFormatError` naming the file, before the model
reaches the GPU (never a randomly initialised classifier).

A batch is preprocessed as the model's own processor says (its size, resampling and statistics;
done in torch on the model's device, `pipeline.engine.annotate.pixel_batch`), run in one forward in bf16
on a GPU, and the logits are upsampled bilinearly to each image's size before the
argmax, so label edges follow the image rather than the 128 px logit grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.engine.annotate import pixel_batch
from pipeline.device import is_cuda, resolve_device
from pipeline.weight_files.hf_folders import TRANSFORMERS_FORMATS, inspect_folder, load_checked, read_config
from pipeline.labels import LABEL_NAMES, id_lookup
from pipeline.backends.parsers.base import FaceParser
from pipeline.rejection import Reject
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, failed_check, offline_check, register_check

PROCESSOR_TYPES = ("SegformerImageProcessor", "SegformerImageProcessorFast", "SegformerFeatureExtractor")
ACCEPTED = (
    TRANSFORMERS_FORMATS[0] + ", config.json of a SegformerForSemanticSegmentation whose id2label names "
    "CelebAMask-HQ classes",
    "preprocessor_config.json of SegformerImageProcessor or the legacy SegformerFeatureExtractor (or none: "
    "the processor's defaults)",
)
RELEASE = ("huggingface.co/jonathandinu/face-parsing: config.json, model.safetensors, preprocessor_config.json "
           "into segment.segformer_dir/")
LAYOUT = """segment.segformer_dir/                 (e.g. huggingface.co/jonathandinu/face-parsing)
  config.json                           SegformerForSemanticSegmentation, id2label: 19 CelebAMask-HQ names
  model.safetensors                     or pytorch_model.bin, model.fp16.safetensors, shards + index
  preprocessor_config.json              optional; SegformerImageProcessor or legacy SegformerFeatureExtractor"""


def load_image_processor(folder: str | Path):
    """The folder's SegFormer image processor, whatever transformers version wrote its config;
    none there: `SegformerImageProcessor()`'s documented defaults."""
    from transformers import SegformerImageProcessor

    folder = Path(folder)
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return SegformerImageProcessor()
    data = read_config(folder, ACCEPTED, path.name)
    kind = data.get("image_processor_type") or data.get("feature_extractor_type")
    if kind is not None and kind not in PROCESSOR_TYPES:
        raise WeightsFormatError(path, ACCEPTED, f"names processor {kind!r}, not a SegFormer one")
    try:
        return SegformerImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - an unusable processor config is a format problem
        raise WeightsFormatError(path, ACCEPTED, f"could not be read ({type(exc).__name__}: {exc})") from exc


def label_lookup(folder: str | Path, id2label: dict) -> dict[int, int]:
    """The checkpoint's label ids -> canonical ids, by name; an unknown name names config.json."""
    try:
        return id_lookup(id2label)
    except KeyError as exc:
        raise WeightsFormatError(Path(folder) / "config.json", ACCEPTED,
                                 f"id2label has {exc.args[0]}; known: {', '.join(LABEL_NAMES)}") from exc


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
        from transformers import SegformerForSemanticSegmentation

        folder = Path(self.params.segformer_dir)
        read_config(folder, ACCEPTED)
        processor = load_image_processor(folder)
        device, dtype = resolve_device(self.params.device, self.params.dtype)
        model = load_checked(SegformerForSemanticSegmentation, folder, ACCEPTED, dtype=dtype)  # on the CPU
        label_lookup(folder, model.config.id2label)
        self._attach(model.to(device).eval(), processor)

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
        if is_cuda(model.device):
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


@register_check("segment.segformer", layout=LAYOUT)
def check(params) -> list[ComponentCheck]:
    """`piq models check`: the SegFormer folder when `segment.backend` is segformer."""
    p = params.segment
    if p.backend != "segformer":
        return [offline_check("segment.segformer", p.backend, "dense-mesh polygons + colour models (mediapipe)")]
    try:
        from transformers import SegformerForSemanticSegmentation

        found = inspect_folder(p.segformer_dir, SegformerForSemanticSegmentation, ACCEPTED)
        labels = label_lookup(p.segformer_dir, read_config(p.segformer_dir, ACCEPTED).get("id2label", {}))
        processor = load_image_processor(p.segformer_dir)
    except WeightsFormatError as exc:
        return [failed_check("segment.segformer", "segformer", p.segformer_dir, exc, RELEASE)]
    size = processor.size
    side = size.get("height") if isinstance(size, dict) else getattr(size, "height", None)
    source = "preprocessor_config.json" if (Path(p.segformer_dir) / "preprocessor_config.json").is_file() else "defaults"
    return [ComponentCheck("segment.segformer", "segformer", p.segformer_dir, True,
                           f"{found}; {len(labels)} labels mapped by name; processor {side} px ({source})")]
