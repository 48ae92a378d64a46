"""Painting a photo of any size at its own resolution, in overlapping tiles.

The generator is fully convolutional: it paints a tile of the size it was trained at (or a
multiple) as well as a whole photo. `paint_in_tiles` cuts a photo into overlapping tiles, paints
them a batch at a time (so memory stays bounded for any photo size) and blends them back with
weights that ramp linearly across each overlap, so neighbouring tiles fade into each other
instead of meeting at a seam. The weights of two overlapping ramps sum to one; a photo that is
one tile comes back exactly as its tile was painted.
"""

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along one side of `length` pixels start: every `tile - overlap` pixels,
    the last one flush with the end (so it may overlap its neighbour more). One tile at 0
    when the side is not longer than a tile."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(tile: int, overlap: int) -> np.ndarray:
    """float64 [tile]: the blending weight along one side of a tile, rising linearly over the
    first `overlap` pixels and falling over the last, 1 between (no ramp with overlap 0).
    Never 0, so a pixel only one tile covers (at the photo's edges) keeps its painting."""
    if overlap == 0:
        return np.ones(tile)
    position = np.arange(tile) + 0.5
    return np.clip(np.minimum(position, tile - position) / overlap, 1e-3, 1.0)


def paint_in_tiles(paint: Callable[[np.ndarray], np.ndarray], photo: np.ndarray, tile: int,
                   overlap: int, batch_size: int = 8) -> np.ndarray:
    """uint8 [H, W, 3] photo -> uint8 [H, W, 3] painting, painted `tile` x `tile` at a time.

    `paint` maps uint8 [N, tile, tile, 3] to uint8 paintings of the same shape (it is called
    with at most `batch_size` tiles, always N = batch_size: the last batch is filled up with
    copies). A side shorter than `tile` is mirrored out to it, and the painting cut back.
    """
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap {overlap} must be between 0 and half the tile ({tile // 2})")
    height, width = photo.shape[:2]
    padded = np.pad(photo, ((0, max(0, tile - height)), (0, max(0, tile - width)), (0, 0)), mode="symmetric")
    corners = [(y, x) for y in tile_starts(padded.shape[0], tile, overlap)
               for x in tile_starts(padded.shape[1], tile, overlap)]
    weight = np.outer(ramp(tile, overlap), ramp(tile, overlap))[..., np.newaxis]
    total = np.zeros(padded.shape, np.float64)
    weights = np.zeros(padded.shape[:2] + (1,), np.float64)
    for first in range(0, len(corners), batch_size):
        batch = corners[first:first + batch_size]
        tiles = np.stack([padded[y:y + tile, x:x + tile] for y, x in batch])
        if len(batch) < batch_size:
            tiles = np.concatenate([tiles, np.repeat(tiles[:1], batch_size - len(batch), axis=0)])
        paintings = np.asarray(paint(tiles))
        for (y, x), painting in zip(batch, paintings):
            total[y:y + tile, x:x + tile] += weight * painting
            weights[y:y + tile, x:x + tile] += weight
    blended = np.round(total / weights)[:height, :width]
    return np.clip(blended, 0, 255).astype(np.uint8)
