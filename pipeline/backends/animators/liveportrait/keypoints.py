"""Implicit keypoint arithmetic of LivePortrait (paper Eq. 1 and the relative-motion rule).

x = s * (x_c R + delta) + t, with R from pitch / yaw / roll (each predicted as 66 bins of 3
degrees), delta the expression deformation, s a scale and t a translation (only tx, ty applied).
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

BIN_DEGREES = 3.0
BIN_OFFSET = 97.5  # the published decoding: degrees = 3 * E[bin] - 97.5


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees, the softmax expectation of the bin index."""
    idx = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
    return (F.softmax(logits.float(), dim=1) * idx).sum(1) * BIN_DEGREES - BIN_OFFSET


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) degrees -> (B, 3, 3) matrices applied on the right of row vectors (x @ R), i.e. the
    transpose of Rz @ Ry @ Rx."""
    x, y, z = (a.float() * (math.pi / 180) for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)

    def mat(rows):
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    rx = mat([[one, zero, zero], [zero, x.cos(), -x.sin()], [zero, x.sin(), x.cos()]])
    ry = mat([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rz = mat([[z.cos(), -z.sin(), zero], [z.sin(), z.cos(), zero], [zero, zero, one]])
    return (rz @ ry @ rx).transpose(1, 2)


@dataclasses.dataclass
class Motion:
    """Decoded motion of a batch of crops (float32)."""

    kp: torch.Tensor  # (B, K, 3) canonical keypoints x_c
    R: torch.Tensor  # (B, 3, 3)
    exp: torch.Tensor  # (B, K, 3) expression deformation delta
    scale: torch.Tensor  # (B, 1)
    t: torch.Tensor  # (B, 3)
    pose: torch.Tensor  # (B, 3) pitch, yaw, roll in degrees (recorded, not used further)

    @classmethod
    def from_heads(cls, heads: dict[str, torch.Tensor]) -> "Motion":
        b = heads["kp"].shape[0]
        pose = torch.stack([bins_to_degrees(heads[k]) for k in ("pitch", "yaw", "roll")], dim=1)
        return cls(kp=heads["kp"].float().view(b, -1, 3), R=rotation_matrix(*pose.unbind(1)),
                   exp=heads["exp"].float().view(b, -1, 3), scale=heads["scale"].float(),
                   t=heads["t"].float(), pose=pose)

    def __getitem__(self, index) -> "Motion":
        return Motion(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @classmethod
    def cat(cls, parts: "list[Motion]") -> "Motion":
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})


def transform(kp: torch.Tensor, R: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor,
              t: torch.Tensor) -> torch.Tensor:
    """x = s (x_c R + delta) + t, with tz dropped (as the published code)."""
    x = scale[:, :, None] * (kp @ R + exp)
    return torch.cat([x[..., :2] + t[:, None, :2], x[..., 2:]], dim=-1)


def source_keypoints(source: Motion) -> torch.Tensor:
    return transform(source.kp, source.R, source.exp, source.scale, source.t)


def relative_driving_keypoints(source: Motion, first: Motion, last: Motion) -> torch.Tensor:
    """The official relative mode: the driver's change from its first to its last frame applied to
    the source -- rotation R_last R_first^T R_s, expression delta_s + (delta_last - delta_first),
    scale s_s * s_last / s_first, translation t_s + (t_last - t_first). `source` may have batch 1
    and broadcast over the drivers. Identical first and last frames give the source keypoints."""
    R = last.R @ first.R.transpose(1, 2) @ source.R
    exp = source.exp + (last.exp - first.exp)
    scale = source.scale * (last.scale / first.scale)
    t = source.t + (last.t - first.t)
    kp = source.kp.expand(R.shape[0], -1, -1)
    return transform(kp, R, exp, scale, t)


def stitch(stitching: torch.nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Stitching (paper Sec. 3.2): the MLP predicts a keypoint offset and a (tx, ty) shift from
    (x_s, x_d) that keep the shoulders and the crop border in place for paste-back."""
    b, k, _ = x_d.shape
    delta = stitching(torch.cat([x_s.reshape(b, -1), x_d.reshape(b, -1)], dim=1)).float()
    out = x_d + delta[:, : 3 * k].view(b, k, 3)
    return torch.cat([out[..., :2] + delta[:, None, 3 * k: 3 * k + 2], out[..., 2:]], dim=-1)


def retarget_lip(lip: torch.nn.Module, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """Lip retargeting (paper Sec. 3.2): (x_s, [source lip ratio, target lip ratio]) -> (B, K, 3)
    keypoint offset that sets the mouth opening to the target."""
    b, k, _ = x_s.shape
    return lip(torch.cat([x_s.reshape(b, -1), ratios.float()], dim=1)).float().view(b, k, 3)
