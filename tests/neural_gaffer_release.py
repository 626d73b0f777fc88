"""NeuralGaffer's two published pieces with tiny random weights, each in its own release layout:

- the Zero123-XL base as Hugging Face kxic/zero123-xl publishes it (diffusers folders with
  *.bin weights, an 8-input-channel unet/, plus feature_extractor/, cc_projection/ and
  model_index.json of the Zero1to3 pipeline);
- the released fine-tuned UNet as neural_gaffer_res256_ckpt.zip unzips: `neural_gaffer_res256/
  checkpoint-<step>/model.safetensors` (accelerate's save_state name), a 16-input UNet state
  dict, beside the other files accelerate writes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch


def write_release(root: Path, seed: int = 0, step: int = 1200, full: bool = False) -> tuple[Path, Path, dict]:
    """(base folder, checkpoint folder, the fine-tuned UNet's state dict). Tiny models, or `full`
    the published architecture (tests/neural_gaffer_random.py; built on the GPU when there is
    one, saved from the CPU), with only the newest checkpoint (the older one, a zeroed copy that
    shows the newest is taken, would be 3.4 GB more)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor

    from tests.neural_gaffer_random import build_random_components

    if full:
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            parts = build_random_components(full=True, seed=seed)
        unet16, vae, encoder, scheduler = (*(m.to("cpu") for m in parts[:3]), parts[3])
    else:
        unet16, vae, encoder, scheduler = build_random_components(seed=seed)
    base = root / "zero123-xl"
    unet8 = UNet2DConditionModel.from_config({**unet16.config, "in_channels": 8})
    unet8.save_pretrained(base / "unet", safe_serialization=False)
    vae.save_pretrained(base / "vae", safe_serialization=False)
    encoder.config.save_pretrained(base / "image_encoder")
    torch.save(encoder.state_dict(), base / "image_encoder" / "pytorch_model.bin")
    scheduler.save_pretrained(base / "scheduler")
    side = encoder.config.image_size
    CLIPImageProcessor(crop_size=side, size={"shortest_edge": side}).save_pretrained(base / "feature_extractor")
    proj = encoder.config.projection_dim
    (base / "cc_projection").mkdir()
    (base / "cc_projection" / "config.json").write_text(json.dumps(
        {"_class_name": "CCProjection", "in_channel": proj + 4, "out_channel": proj}))
    linear = torch.nn.Linear(proj + 4, proj)
    torch.save({f"projection.{k}": v for k, v in linear.state_dict().items()},
               base / "cc_projection" / "diffusion_pytorch_model.bin")
    (base / "model_index.json").write_text(json.dumps({
        "_class_name": "Zero1to3StableDiffusionPipeline", "cc_projection": ["pipeline_zero1to3", "CCProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}, indent=1))
    ckpt_root = root / "neural_gaffer_res256"
    older, newest = ckpt_root / f"checkpoint-{step // 2}", ckpt_root / f"checkpoint-{step}"
    state = {k: v.contiguous() for k, v in unet16.state_dict().items()}
    for d in (newest,) if full else (older, newest):
        d.mkdir(parents=True)
        (d / "random_states_0.pkl").write_bytes(b"")  # accelerate writes these too; ignored
    if not full:
        save_file({k: torch.zeros_like(v) for k, v in state.items()}, str(older / "model.safetensors"))
    save_file(state, str(newest / "model.safetensors"))
    return base, ckpt_root, state
