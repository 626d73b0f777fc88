"""The precomputed VAE latents of training images (`piq latents`), and the trainer's reader.

Why: the frozen VAE encoded source, driving and target at every step (3 x 576 px per sample),
and the loader decoded and resized all three from 1024 px JPEGs. Source and target are not
augmented (paper 4.1 augments the driving face only), so their latents are a function of the
image alone and can be computed once. The driving image is augmented per step and stays encoded
in the step.

What is stored: the VAE posterior's parameters (`latent_dist.parameters`: mean and log-variance,
2 x 4 channels), not one sample of it, so the trainer still draws a fresh posterior sample per
step exactly as `vae.encode(x).latent_dist.sample()` would. Each image is stored as it is and
mirrored (flip 0 and 1), because a VAE is not flip-equivariant: `data.pair_flip_prob` can then
mirror a whole pair without re-encoding. float16: the GPU encoder runs in bf16, whose values
fp16 holds exactly (8-bit mantissa, range within fp16's) apart from magnitudes below 6e-5.

Layout of `<cache>/`: one `<shard>.safetensors` per release shard (tensor `"<set>/<index>"`
of shape (2, 8, h, w), flips stacked; header metadata names the VAE, resolution and shard
sha256) and `cache.json` (written last): the VAE hash, resolution, dtype, and per shard its
sha256, file and keys. A cache made by another VAE, at another resolution or for another shard
set is refused (`LatentCacheMismatch`, naming what differs); an image missing from the cache
(e.g. it failed to decode when the cache was made) is encoded in the step and counted.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from pipeline.release.reader import ShardRef

CACHE_FILE = "cache.json"
FORMAT = 1
STORE_DTYPE = torch.float16


class LatentCacheMismatch(ValueError):
    """A latent cache that was made for another VAE, resolution or shard set."""


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """sha256 of the VAE's config (its private `_` keys left out: where it was loaded from, and
    a set-ordered list) and weights (as fp32, in state-dict order): two VAEs with the same
    fingerprint encode alike. Call it before the VAE is cast to bf16 for training, or the
    cast changes the hash (hash the originals, as the cache stage does)."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}  # not _name_or_path, _use_default_values
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in vae.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def shard_file(ref: ShardRef) -> str:
    name = Path(ref.url.split()[-1]).name if ref.url.startswith("pipe:") else Path(ref.url).name
    return name.removesuffix(".tar") + ".safetensors"


def entry_key(set_key: str, index: str) -> str:
    return f"{set_key}/{index}"


def identity(vae_hash: str, resolution: int, refs: Sequence[ShardRef]) -> dict[str, Any]:
    """What a cache must agree with to be used: written as cache.json's head by `piq latents`."""
    return {"format": FORMAT, "vae": vae_hash, "resolution": int(resolution), "dtype": "float16",
            "shards": {shard_file(r).removesuffix(".safetensors"): {"sha256": r.sha256, "file": shard_file(r),
                                                                      "keys": list(r.keys)} for r in refs}}


def mismatch(cache: dict[str, Any], want: dict[str, Any], where: str) -> Optional[str]:
    """Why the cache described by `cache` (its cache.json) cannot serve a run that needs `want`
    (`identity(...)` of the run), or None if it can. Extra shards in the cache are fine."""
    if cache.get("format") != FORMAT:
        return f"latent cache {where} has format {cache.get('format')}, this code reads {FORMAT}: rerun `piq latents`"
    if cache["vae"] != want["vae"]:
        return (f"latent cache {where} was made by another VAE (sha256 {cache['vae'][:12]}..., this run's VAE "
                f"{want['vae'][:12]}...): rerun `piq latents` or set train.latents_dir: null")
    if cache["resolution"] != want["resolution"]:
        return (f"latent cache {where} is at resolution {cache['resolution']} px, this run trains at "
                f"data.resolution {want['resolution']}: rerun `piq latents`")
    missing = sorted(set(want["shards"]) - set(cache["shards"]))
    if missing:
        return (f"latent cache {where} was made for another shard set: it lacks {len(missing)} shard(s) of this run "
                f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}): rerun `piq latents`")
    changed = sorted(n for n, s in want["shards"].items() if s["sha256"] and cache["shards"][n]["sha256"] != s["sha256"])
    if changed:
        return (f"latent cache {where} was made for another shard set: {', '.join(changed[:3])} changed since "
                f"(sha256 differs): rerun `piq latents`")
    return None


class LatentCache:
    """Read side, used in DataLoader workers: `get(set_key, index, flip)` -> (8, h, w) float16
    moments or None when the image is not in the cache. File handles are opened lazily in each
    process (they are not pickled into workers)."""

    def __init__(self, root: str | Path, want: dict[str, Any]) -> None:
        self.root = Path(root)
        manifest = self.root / CACHE_FILE
        if not manifest.exists():
            raise FileNotFoundError(f"no latent cache in {self.root} ({CACHE_FILE} missing): run `piq latents` "
                                    f"or set train.latents_dir: null")
        cache = json.loads(manifest.read_text())
        why = mismatch(cache, want, str(self.root))
        if why:
            raise LatentCacheMismatch(why)
        self._file_of = {k: s["file"] for s in cache["shards"].values() for k in s["keys"]}
        self._handles: dict[str, Any] = {}
        self._keys: dict[str, set[str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}, "_keys": {}}

    def _open(self, file: str):
        if file not in self._handles:
            from safetensors import safe_open

            path = self.root / file
            if not path.exists():
                self._handles[file], self._keys[file] = None, set()
            else:
                self._handles[file] = safe_open(str(path), framework="pt")
                self._keys[file] = set(self._handles[file].keys())
        return self._handles[file], self._keys[file]

    def get(self, set_key: str, index: str, flip: bool = False) -> Optional[torch.Tensor]:
        file = self._file_of.get(set_key)
        if file is None:
            return None
        handle, keys = self._open(file)
        key = entry_key(set_key, index)
        if key not in keys:
            return None
        return handle.get_slice(key)[int(flip)]


def open_cache(latents_dir: Optional[str], vae_hash: str, resolution: int, refs: Sequence[ShardRef]) -> Optional[LatentCache]:
    """The cache a run uses, checked against its VAE, resolution and shards; None without one."""
    if latents_dir is None:
        return None
    return LatentCache(latents_dir, identity(vae_hash, resolution, refs))


@torch.no_grad()
def encode_moments(vae: torch.nn.Module, images: torch.Tensor, chunk: int) -> torch.Tensor:
    """Images in [-1, 1] -> the VAE posterior's parameters (N, 2C, h, w), in the VAE's dtype,
    `chunk` images per call: what the cache stores and what a missing entry is encoded to."""
    device = next(vae.parameters()).device
    images = images.to(device=device, dtype=vae.dtype)
    return torch.cat([vae.encode(part).latent_dist.parameters for part in images.split(chunk)])


def sample_latents(moments: torch.Tensor, scaling_factor: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A posterior sample from stored parameters, scaled: the same draw as
    `vae.encode(x).latent_dist.sample(generator)` (diffusers' DiagonalGaussianDistribution)."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    return DiagonalGaussianDistribution(moments.float()).sample(generator=generator) * scaling_factor
