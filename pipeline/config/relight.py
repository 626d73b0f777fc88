"""Parameters of the `relight` stage (paper 4.1 and A.1: NeuralGaffer, 5 relit variants + original)."""
from __future__ import annotations

import dataclasses

from pipeline.labels import LABEL_IDS
from pipeline.config.keys import runtime

# The procedural environment maps `pipeline.backends.relighters.envmaps` can draw.
PROCEDURAL_KINDS: tuple[str, ...] = ("sun_sky", "softbox", "rim", "split", "window")


@dataclasses.dataclass(frozen=True)
class RelightParams:
    """Which relighter runs, which lights it gets, and which pixels it may touch.

    See params.yaml for the paper's value beside each key and docs/DATA.md for the outputs.
    """

    animate_dir: str = "data/animate"
    segment_dir: str = "data/segment"
    out_dir: str = runtime("data/relight")
    backend: str = "sh"                      # sh | neural_gaffer
    variants: int = 5                        # relit variants per image (r1..rK); r0 is the image itself
    regions: tuple[str, ...] = (             # canonical labels the relighter may change
        "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip",
        "l_ear", "r_ear", "hair",
    )
    min_mask_fraction: float = 0.01          # fewer masked pixels than this share of the image: "no_face_mask"
    feather_px: int = 12                     # inward feather of the mask edge at 1024 px (outside stays untouched)
    envmap_dir: str | None = None            # folder of .hdr / .exr maps; null or empty = procedural maps
    procedural_kinds: tuple[str, ...] = PROCEDURAL_KINDS
    rotation_deg: tuple[float, float] = (-180.0, 180.0)  # random azimuth rotation of each map
    envmap_width: int = 256                  # equirectangular maps are resampled to W x W/2
    # --- sh backend ---------------------------------------------------------------------------
    normal_size: int = 256                   # normals and shading are computed at this size, then upsampled
    original_shading: float = 0.7            # 0: the original is taken as flat-lit; 1: divide out its fitted shading fully
    color_strength: float = 0.35             # 0: white light; 1: the map's full colour
    exposure: tuple[float, float] = (0.85, 1.15)  # random overall exposure of a variant (mean face brightness ratio)
    shade_range: tuple[float, float] = (0.15, 2.2)  # clip of the relative shading (deep shadow floor, highlight cap)
    # --- neural_gaffer backend ------------------------------------------------------------------
    neural_gaffer_dir: str | None = None     # the Zero123-XL base as published (kxic/zero123-xl), or a 16-input NeuralGaffer folder
    neural_gaffer_checkpoint: str | None = None  # the released neural_gaffer_res256/ (newest checkpoint-N/) or one checkpoint-N/
    resolution: int = 256                    # NeuralGaffer: 256
    num_inference_steps: int = 50            # NeuralGaffer: 50 (DDIM)
    guidance_scale: float = 3.0              # NeuralGaffer: 3.0
    crop_margin: float = 0.15                # the face crop is the mask's box grown by this share on each side
    device: str = runtime("auto")            # auto | cuda | cpu
    dtype: str = "bf16"                      # bf16 | fp16 | fp32 (on a CPU always fp32)
    num_gpus: float = runtime(1.0)           # GPUs per Ray actor for model backends
    workers: int | None = runtime(None)      # Ray actors; null = one per core (sh) or per GPU share (neural_gaffer)
    jpeg_quality: int = 95
    preview: bool = runtime(True)            # write preview.jpg (one face's r0..rK side by side) into out_dir

    def validate(self) -> None:
        if self.backend not in ("sh", "neural_gaffer"):
            raise ValueError("relight.backend must be sh or neural_gaffer")
        if self.backend == "neural_gaffer" and not self.neural_gaffer_dir:
            raise ValueError("relight.neural_gaffer_dir must name the model folder when backend is neural_gaffer")
        if self.variants < 1:
            raise ValueError("relight.variants must be >= 1")
        unknown = [r for r in self.regions if r not in LABEL_IDS]
        if unknown or not self.regions:
            raise ValueError(f"relight.regions: unknown label(s) {unknown}; known: {sorted(LABEL_IDS)}")
        bad_kinds = [k for k in self.procedural_kinds if k not in PROCEDURAL_KINDS]
        if bad_kinds or not self.procedural_kinds:
            raise ValueError(f"relight.procedural_kinds: unknown {bad_kinds}; known: {list(PROCEDURAL_KINDS)}")
        if self.rotation_deg[0] > self.rotation_deg[1] or self.exposure[0] > self.exposure[1]:
            raise ValueError("relight.rotation_deg and relight.exposure are [low, high] ranges")
        if not 0 < self.shade_range[0] < 1 < self.shade_range[1]:
            raise ValueError("relight.shade_range must be [floor < 1, cap > 1]")
        if not 0.0 <= self.original_shading <= 1.0 or not 0.0 <= self.color_strength <= 1.0:
            raise ValueError("relight.original_shading and color_strength must be within [0, 1]")
        if self.resolution % 8 or self.envmap_width % 2:
            raise ValueError("relight.resolution must be a multiple of 8 and envmap_width even")
        if self.device not in ("auto", "cuda", "cpu") or self.dtype not in ("bf16", "fp16", "fp32"):
            raise ValueError("relight.device must be auto/cuda/cpu and relight.dtype bf16/fp16/fp32")
        if self.num_gpus < 0 or (self.workers is not None and self.workers < 0):
            raise ValueError("relight.num_gpus and relight.workers must be >= 0")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("relight.jpeg_quality must be within [1, 100]")
