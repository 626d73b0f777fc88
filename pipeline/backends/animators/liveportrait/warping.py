"""W, the warping module: a dense 3D flow (and an occlusion map) from the source and driving
implicit keypoints, applied to the appearance feature volume (paper Sec. 3.1, after face-vid2vid).

Coordinates are in [-1, 1] in grid_sample's (x, y, z) order: keypoints live in that same space.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Hourglass, SameBlock2d
from .config import DenseMotionConfig, WarpingConfig

KP_VARIANCE = 0.01  # the Gaussian width of each keypoint's heatmap


def coordinate_grid(d: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(d, h, w, 3) grid of (x, y, z) in [-1, 1] (x right, y down, z inwards)."""
    axes = [torch.linspace(-1, 1, n, dtype=like.dtype, device=like.device) for n in (d, h, w)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def keypoint_heatmaps(kp: torch.Tensor, d: int, h: int, w: int) -> torch.Tensor:
    """(B, K, 3) keypoints -> (B, K, d, h, w) Gaussian blobs."""
    grid = coordinate_grid(d, h, w, kp)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    """Per-keypoint translations of the identity grid, blended by masks an hourglass predicts
    from the deformed (compressed) features and the keypoint heatmap differences."""

    def __init__(self, cfg: DenseMotionConfig, num_kp: int, feature_channel: int, estimate_occlusion_map: bool) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass(cfg.block_expansion, (num_kp + 1) * (cfg.compress + 1), cfg.num_blocks,
                                   cfg.max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, cfg.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(cfg.compress, affine=True)
        self.occlusion = (nn.Conv2d(self.hourglass.out_filters * cfg.reshape_depth, 1, kernel_size=7, padding=3)
                          if estimate_occlusion_map else None)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        feature = F.relu(self.norm(self.compress(feature)))
        b, c, d, h, w = feature.shape
        k1 = self.num_kp + 1
        identity = coordinate_grid(d, h, w, kp_source)  # (d, h, w, 3)
        # Sparse motions: for each keypoint, where a driving-space point comes from in the source
        # (a pure translation kp_source - kp_driving); index 0 is the unmoved background.
        shift = (kp_source - kp_driving)[:, :, None, None, None, :]
        sparse = torch.cat([identity.expand(b, 1, d, h, w, 3), identity[None, None] + shift], dim=1)
        deformed = F.grid_sample(feature[:, None].expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w),
                                 sparse.reshape(b * k1, d, h, w, 3), align_corners=False).view(b, k1, c, d, h, w)
        heat = keypoint_heatmaps(kp_driving, d, h, w) - keypoint_heatmaps(kp_source, d, h, w)
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1)[:, :, None]
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)  # (b, k1, d, h, w)
        # Blend in float32 (elementwise ops are not autocast): the flow is a sub-pixel quantity.
        deformation = (mask.float()[..., None] * sparse.float()).sum(dim=1)  # (b, d, h, w, 3)
        out = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return out


class WarpingNetwork(nn.Module):
    """(feature volume, kp_source, kp_driving) -> warped 2D features (B, 256, 64, 64)."""

    def __init__(self, cfg: WarpingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion, cfg.num_kp, cfg.reshape_channel,
                                                       cfg.estimate_occlusion_map)
        width = cfg.block_expansion * 2 ** cfg.num_down_blocks
        self.third = SameBlock2d(cfg.max_features, width, lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        warped = F.grid_sample(feature_3d.float(), motion["deformation"], align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.view(b, c * d, h, w)))
        if "occlusion_map" in motion:
            out = out * motion["occlusion_map"]
        return {"out": out, **motion}
