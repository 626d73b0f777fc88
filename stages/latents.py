"""`piq latents`: the VAE latents of every training image, computed once (issue 18).

Source and target enter the model unaugmented (paper 4.1 augments the driving face only), so
their VAE posterior is a function of the image: this stage encodes each image of each set of
`data.shards` at `data.resolution` (resized by `train.data.to_tensor`, the loader's one resize),
as it is and mirrored, with the training backbone's VAE, and writes one safetensors file per
shard plus `cache.json` (train/latents.py gives the format). `piq train` with
`train.latents_dir` then reads source and target latents from here and encodes only the
per-step driving image.

Resumes by shard: a shard file whose header names the same VAE, resolution and shard sha256
is kept; others are rewritten (under a temporary name, then renamed). `cache.json` is removed
first and written last, so an interrupted run never leaves a cache that looks complete, and
files of shards no longer in the split are deleted. An image that fails to decode is recorded
in cache.json's `rejects` with its reason and left out: training encodes it in the step.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.device import is_cuda, resolve_device
from pipeline.config.params import load_params
from pipeline.release.reader import empty_split_refusal, ShardRef, release_dataset, resolve_shards
from pipeline.release.shards import ShardError
from pipeline.engine.outdir import atomic_write_json
from train.backbones import build_vae
from train.data import to_tensor
from train.latents import (CACHE_FILE, STORE_DTYPE, encode_moments, entry_key, identity, shard_file,
                           vae_fingerprint)


def _header(vae_hash: str, resolution: int, ref: ShardRef) -> dict[str, str]:
    return {"vae": vae_hash, "resolution": str(resolution), "shard_sha256": ref.sha256}


def _metadata(header: dict[str, str]) -> dict[str, str]:
    """The header as ONE safetensors metadata entry: safetensors writes several entries in hash
    order, which differs from run to run, and a DVC out must hash the same on every run."""
    return {"piq_latents": json.dumps(header, sort_keys=True)}


def _is_current(path: Path, header: dict[str, str]) -> bool:
    from safetensors import safe_open

    if not path.exists():
        return False
    try:
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}) == _metadata(header)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is rewritten
        return False


def encode_shard(vae: torch.nn.Module, ref: ShardRef, resolution: int, batch: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """{"<set>/<index>": (2, 2C, h, w) float16} for every decodable image of the shard, and
    the rejects (set, index, reason) of those that are not."""
    names, images, rejects = [], [], []
    for sample in release_dataset([ref.url]):
        for index in sample.indices:
            try:
                images.append(to_tensor(sample.images[index], resolution))
                names.append(entry_key(sample.key, index))
            except (ShardError, KeyError, ValueError) as err:
                rejects.append({"set": sample.key, "index": index, "shard": Path(ref.url).name, "reason": str(err)})
    out: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch):
        part = torch.stack(images[start:start + batch])
        both = torch.cat([part, part.flip(-1)])  # as it is, then mirrored (a VAE is not flip-equivariant)
        moments = encode_moments(vae, both, 2 * batch).to("cpu", STORE_DTYPE)
        plain, mirrored = moments.chunk(2)
        for i, name in enumerate(names[start:start + batch]):
            out[name] = torch.stack([plain[i], mirrored[i]]).contiguous()
    return out, rejects


def write_cache(vae: torch.nn.Module, vae_hash: str, refs: list[ShardRef], resolution: int, out_dir: Path,
                batch: int) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CACHE_FILE).unlink(missing_ok=True)  # the cache is incomplete until the end
    keep = {shard_file(r) for r in refs}
    for stale in out_dir.glob("*.safetensors"):
        if stale.name not in keep:
            stale.unlink()
    manifest = identity(vae_hash, resolution, refs)
    rejects, encoded, kept, entries = [], 0, 0, 0
    for ref in tqdm(refs, desc="latents", unit="shard", file=sys.stderr, dynamic_ncols=True):
        path, header = out_dir / shard_file(ref), _header(vae_hash, resolution, ref)
        if _is_current(path, header):
            kept += 1
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                entries += len(fh.keys())
            continue
        tensors, bad = encode_shard(vae, ref, resolution, batch)
        rejects += bad
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata=_metadata(header))
        tmp.replace(path)
        encoded, entries = encoded + 1, entries + len(tensors)
    manifest.update(entries=entries, rejects=rejects)
    atomic_write_json(out_dir / CACHE_FILE, manifest)  # what the cache holds, not how this run got there
    return {**manifest, "shards_encoded": encoded, "shards_kept": kept}


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    refusal = empty_split_refusal(params.data.shards, "piq latents")
    if refusal:  # one line, exit 2: not a traceback from the loader
        print(refusal, file=sys.stderr)
        return 2
    tp, dp, lp = params.train, params.data, params.latents
    device, dtype = resolve_device(lp.device, lp.dtype)
    vae = build_vae(tp.backbone, tp.pretrained_dir, params.seed, tp.concat)
    vae_hash = vae_fingerprint(vae)  # of the weights as loaded, before the cast below
    vae = vae.to(device=device, dtype=dtype).eval()
    if is_cuda(device):
        vae.to(memory_format=torch.channels_last)
    refs = resolve_shards(dp.shards)
    t0 = time.perf_counter()
    manifest = write_cache(vae, vae_hash, refs, dp.resolution, Path(lp.out_dir), lp.batch_size)
    print(f"latents: {manifest['entries']} images x 2 flips of {len(refs)} shard(s) at {dp.resolution} px "
          f"({manifest['shards_encoded']} encoded, {manifest['shards_kept']} kept), {len(manifest['rejects'])} "
          f"rejected, {time.perf_counter() - t0:.1f} s -> {lp.out_dir}")
    return 0
