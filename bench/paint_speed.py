"""Seconds to paint one 12-megapixel photo (4000x3000) with `python -m monet_gan.paint`'s painter.

    python bench/paint_speed.py [--preset kaggle] [--width 4000] [--height 3000] [--overlap N] [--repeats 2]

The generator of the preset (weights as initialised: the time does not depend on them) paints
the photo in `--mode full` (tiles of the training size, a quarter tile overlap unless
--overlap) and, in the same process as the baseline, in `--mode resize` (the SavedModel's
way: painted at the training size and resized back). Times are medians after one warm-up
painting, which traces and compiles the painter.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def median_seconds(work, repeats: int) -> float:
    work()  # traces and compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    import numpy as np

    from monet_gan import config as config_lib
    from monet_gan import networks, paint, tiling

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="kaggle", choices=config_lib.PRESETS)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--overlap", type=int, help="default: a quarter tile")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles painted at once")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = config_lib.preset(args.preset)
    with networks.float32_policy():
        generator = networks.build_generator(config, name="photo_to_monet")
    painter = paint.generator_painter(generator, config)
    tile = config.image_size
    overlap = tile // 4 if args.overlap is None else args.overlap
    photo = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    tiles = (len(tiling.tile_starts(args.height, tile, overlap))
             * len(tiling.tile_starts(args.width, tile, overlap)))

    full = median_seconds(lambda: tiling.paint_in_tiles(painter.tiles, photo, tile, overlap, args.batch_size),
                          args.repeats)
    resized = median_seconds(lambda: painter.resized(photo[np.newaxis]), args.repeats)
    megapixels = args.width * args.height / 1e6
    print(f"| mode | seconds per {args.width}x{args.height} photo ({megapixels:.0f} MP) | tiles | vs resize |")
    print("| --- | --- | --- | --- |")
    print(f"| resize (the SavedModel's way, baseline) | {resized:.2f} | 1 | 1.00x |")
    print(f"| full ({tile} px tiles, {overlap} px overlap, {args.batch_size} at a time) | {full:.2f} | "
          f"{tiles} | {full / resized:.1f}x |")
    print(f"`{args.preset}` generator ({config.image_size} px, width {config.generator_filters}); "
          f"{os.cpu_count()} CPU cores; {full / tiles * 1000:.0f} ms per tile.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
