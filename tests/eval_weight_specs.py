"""Parameter names and shapes of the published evaluation checkpoints, written out from the
official architectures independently of eval/nets (so a test that loads a file written from
these checks our modules against the release, not against themselves), and writers of files
in the published layouts with random values.

- arcface_torch `backbone.pth` (insightface recognition/arcface_torch/backbones/iresnet.py);
- Deep3DFaceRecon_pytorch `checkpoints/<name>/epoch_20.pth` (models/networks.py ReconNetWrapper,
  models/base_model.py save_networks: {'net_recon': ..., 'opt_00': ..., 'epoch': ...}).
- pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (torchvision's Inception3 with 1008
  classes and no auxiliary head) and torchvision's `alexnet-owt-7be5be79.pth` (LPIPS' trunk),
  written through torchvision's own modules.
The tests compare these against the official packages where they install (pytorch-fid, lpips).
"""
from __future__ import annotations

from pathlib import Path

import torch

Spec = dict[str, tuple[int, ...]]


def _bn(spec: Spec, name: str, c: int) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        spec[f"{name}.{p}"] = (c,)
    spec[f"{name}.num_batches_tracked"] = ()


def arcface_torch_iresnet(layers: tuple[int, int, int, int]) -> Spec:
    """iresnet<N> of arcface_torch: 3x3 stem (64) + PReLU, four stages of IBasicBlocks
    (bn1, conv1, bn2, prelu, conv2 with the stride, bn3; downsample.0 conv1x1 + .1 BN on the
    first block of each stage), bn2, fc 512*7*7 -> 512, features BatchNorm1d(512)."""
    spec: Spec = {"conv1.weight": (64, 3, 3, 3)}
    _bn(spec, "bn1", 64)
    spec["prelu.weight"] = (64,)
    cin = 64
    for s, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            _bn(spec, f"{p}.bn1", cin)
            spec[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            _bn(spec, f"{p}.bn2", planes)
            spec[f"{p}.prelu.weight"] = (planes,)
            spec[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _bn(spec, f"{p}.bn3", planes)
            if b == 0:
                spec[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
                _bn(spec, f"{p}.downsample.1", planes)
            cin = planes
    _bn(spec, "bn2", 512)
    spec["fc.weight"], spec["fc.bias"] = (512, 512 * 7 * 7), (512,)
    _bn(spec, "features", 512)
    return spec


IRESNET50, IRESNET100 = (3, 4, 14, 3), (3, 13, 30, 3)


def deep3d_net_recon() -> Spec:
    """ReconNetWrapper('resnet50', use_last_fc=False): torchvision's ResNet-50 layout without fc
    under `backbone.`, and seven 1x1 conv heads (80, 64, 80, 3, 27, 2, 1) under `final_layers.`."""
    spec: Spec = {"backbone.conv1.weight": (64, 3, 7, 7)}
    _bn(spec, "backbone.bn1", 64)
    cin = 64
    for s, (n, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for b in range(n):
            p = f"backbone.layer{s + 1}.{b}"
            spec[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            _bn(spec, f"{p}.bn1", planes)
            spec[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _bn(spec, f"{p}.bn2", planes)
            spec[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            _bn(spec, f"{p}.bn3", planes * 4)
            if b == 0:
                spec[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                _bn(spec, f"{p}.downsample.1", planes * 4)
            cin = planes * 4
    for i, n in enumerate((80, 64, 80, 3, 27, 2, 1)):
        spec[f"final_layers.{i}.weight"], spec[f"final_layers.{i}.bias"] = (n, 2048, 1, 1), (n,)
    return spec


def random_state(spec: Spec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values of the right kind: unit-variance-preserving conv / linear weights,
    BatchNorm statistics near (0, 1), PReLU slopes 0.25, counters 0."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape in spec.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            out[name] = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith("running_mean") or name.endswith("bias"):
            out[name] = 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("prelu.weight"):
            out[name] = torch.full(shape, 0.25)
        elif len(shape) == 1:  # BatchNorm weight
            out[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = int(torch.Size(shape[1:]).numel())
            out[name] = torch.randn(shape, generator=g) / fan_in ** 0.5
    return out


def write_arcface_backbone(path: Path, layers: tuple[int, int, int, int] = IRESNET50, seed: int = 0) -> Path:
    """arcface_torch's `backbone.pth`: the bare state dict (train.py saves backbone.module.state_dict())."""
    torch.save(random_state(arcface_torch_iresnet(layers), seed), path)
    return path


def write_deep3d_checkpoint(folder: Path, seed: int = 0, model_name: str = "face_recon_feat0.2_augment") -> Path:
    """`checkpoints/<model_name>/epoch_20.pth` as save_networks writes it."""
    path = folder / model_name / "epoch_20.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    net = random_state(deep3d_net_recon(), seed)
    opt = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "params": [0, 1]}]}
    torch.save({"net_recon": net, "opt_00": opt, "sched_00": {"last_epoch": 20}, "epoch": 20}, path)
    return path


def spread_batch_norms(state: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """Random BN statistics (a fresh net has mean 0 / var 1, which would hide a wrong eps or
    a missing normalisation)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if k.endswith("running_var"):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("running_mean"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        out[k] = v
    return out


def write_pytorch_fid_inception(path: Path, seed: int = 0) -> Path:
    """`pt_inception-2015-12-05-6726825d.pth` in pytorch-fid's layout: torchvision's Inception3
    with 1008 classes and no auxiliary head (what pytorch-fid's `fid_inception_v3` loads it
    into), random values."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    torch.save(spread_batch_norms(net.state_dict()), path)
    return path


def write_torchvision_alexnet(path: Path, seed: int = 0) -> Path:
    """torchvision's `alexnet-owt-7be5be79.pth` (the LPIPS trunk `evaluate.lpips_alexnet_weights` names)."""
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path
