"""Typed sizes of LivePortrait's five networks, mirroring the official `src/config/models.yaml`.

`LivePortraitConfig()` is the published size (the official checkpoints load into it strictly);
`LivePortraitConfig.tiny()` is the same code at a few channels, for CPU tests of the loading and
animation path with random weights.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AppearanceConfig:
    """F: 256 px image -> 3D appearance feature volume (reshape_channel x reshape_depth x 64 x 64)."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512  # = reshape_channel * reshape_depth
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """M: a ConvNeXt-V2-tiny backbone with heads for canonical keypoints, pose bins, t, exp, scale."""

    num_kp: int = 21
    num_bins: int = 66  # pitch / yaw / roll as 66 bins of 3 degrees
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)


@dataclasses.dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclasses.dataclass(frozen=True)
class WarpingConfig:
    """W: dense motion from the two keypoint sets, warps the feature volume, 2D projection."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = DenseMotionConfig()


@dataclasses.dataclass(frozen=True)
class SpadeConfig:
    """G: SPADE decoder, 64 x 64 warped features -> 512 px image (upscale 2 by pixel shuffle)."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    spade_hidden: int = 128  # a constant inside the official SPADE block

    @property
    def input_channels(self) -> int:
        return min(self.max_features, self.block_expansion * 2 ** self.num_down_blocks)


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclasses.dataclass(frozen=True)
class StitchingConfig:
    """S and the two retargeting MLPs; sizes depend on num_kp (21 keypoints x 3)."""

    stitching: MLPConfig = MLPConfig(126, (128, 128, 64), 65)  # (x_s, x_d) -> delta exp + (tx, ty)
    lip: MLPConfig = MLPConfig(65, (128, 128, 64), 63)
    eye: MLPConfig = MLPConfig(66, (256, 256, 128, 128, 64), 63)


@dataclasses.dataclass(frozen=True)
class LivePortraitConfig:
    appearance: AppearanceConfig = AppearanceConfig()
    motion: MotionConfig = MotionConfig()
    warping: WarpingConfig = WarpingConfig()
    spade: SpadeConfig = SpadeConfig()
    stitching: StitchingConfig = StitchingConfig()
    input_size: int = 256  # the crop the networks see; the decoder returns input_size * upscale

    @classmethod
    def tiny(cls) -> "LivePortraitConfig":
        """The same architecture at a few channels (CPU tests); keeps 21 keypoints and 66 bins so
        the keypoint arithmetic and the stitching sizes are the real ones."""
        return cls(
            appearance=AppearanceConfig(block_expansion=8, max_features=32, reshape_channel=4, reshape_depth=8,
                                        num_resblocks=1),
            motion=MotionConfig(depths=(1, 1, 1, 1), dims=(8, 16, 16, 32)),
            warping=WarpingConfig(block_expansion=8, max_features=32, reshape_channel=4,
                                  dense_motion=DenseMotionConfig(block_expansion=4, max_features=16, num_blocks=3,
                                                                 reshape_depth=8, compress=2)),
            spade=SpadeConfig(block_expansion=8, max_features=32, out_channels=8, spade_hidden=8),
            stitching=StitchingConfig(stitching=MLPConfig(126, (16,), 65), lip=MLPConfig(65, (16,), 63),
                                      eye=MLPConfig(66, (16,), 63)),
        )
