"""invisible-watermark's dwtDct embedding with its per-block loop done by numpy.

The library (`imwatermark.maxDct.EmbedMaxDct`) converts the image to YUV, takes the Haar DWT of
the U channel and, block by 4x4 block of the approximation band in raster order, sets the
block's largest non-DC coefficient (by magnitude) to the quantisation step of the message's
next bit. That loop is a Python call per block: 16,384 calls for a 1024 px square, ~0.2 s on
one core, the slowest part of marking a photo. `FastEmbedMaxDct` keeps the library's class,
colour conversion, wavelet and scales, and replaces only `encode_frame` with the same
arithmetic on all blocks at once, in the same order of operations, so its output is the
library's bit for bit (tests/test_photo_cpu_levers.py compares both) and the library's own
`WatermarkDecoder` reads it (`piq verify`).
"""
from __future__ import annotations

import numpy as np
from imwatermark.maxDct import EmbedMaxDct


class FastEmbedMaxDct(EmbedMaxDct):
    """`EmbedMaxDct` whose `encode_frame` works on every block at once."""

    def encode_frame(self, frame: np.ndarray, scale: float) -> None:
        b = self._block
        rows, cols = frame.shape[0] // b, frame.shape[1] // b
        if rows == 0 or cols == 0:
            return
        view = frame[: rows * b, : cols * b]
        blocks = view.reshape(rows, b, cols, b).transpose(0, 2, 1, 3).reshape(rows * cols, b * b)  # raster order
        pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1  # the library's: first largest |coefficient| after DC
        at = np.arange(len(blocks))
        val = blocks[at, pos]
        bits = np.asarray(self._watermarks, np.float64)[at % self._wmLen]
        step = (np.abs(val) // scale + 0.25 + 0.5 * bits) * scale
        blocks[at, pos] = np.where(val >= 0.0, step, -step)
        view[...] = blocks.reshape(rows, cols, b, b).transpose(0, 2, 1, 3).reshape(rows * b, cols * b)
