"""Painting your own photos, any size: one painting per photo, same name, size and orientation.

    python -m monet_gan.paint SOURCE PHOTOS... --out FOLDER [--mode full|resize] [--format jpeg|png]

SOURCE is a run folder (its best or newest checkpoint, `--checkpoint`) or a SavedModel that
monet_gan exported. PHOTOS are JPEG/PNG files, folders or globs. `--mode full` (the default)
paints each photo at its own resolution in overlapping tiles of the training size (or
`--tile N`, a multiple of it), blended without seams (`monet_gan.tiling`); `--mode resize`
paints it at the training size and resizes the painting back (`--export-mode resize`). The
photo's EXIF orientation is applied first, so the painting stands as the photo is shown.
Each painting is written under a temporary name and renamed: an interrupted run leaves only
whole paintings.
"""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

from monet_gan import artifacts, cli, data_folder, networks, run_folder, steps, tiling
from monet_gan.callbacks import encode_png
from monet_gan.config import BAD_RECORD_POLICIES, EXPORT_CHECKPOINTS, Config
from monet_gan.errors import ConfigError, DataError, OutputError, RunError
from monet_gan.files import check_writable, write_atomically
from monet_gan.translation import resize_to_uint8, round_to_uint8, translate

if keras.backend.backend() == "tensorflow":  # a SavedModel is TensorFlow's
    import tensorflow as tf

MODES = ("full", "resize")
FORMATS = {"jpeg": ".jpg", "png": ".png"}
DEFAULT_MAX_MEGAPIXELS = data_folder.MAX_IMAGE_PIXELS / 1e6  # 67.1: what the export decodes at most


class Painter:
    """A generator and the size it was trained at. `tiles(uint8 [N, t, t, 3])` paints tiles
    at their own size; `resized(uint8 [1, H, W, 3])` paints at the training size and back."""

    def __init__(self, tiles: Callable, resized: Callable, image_size: int, tile_sizes: str):
        self.tiles, self.resized, self.image_size = tiles, resized, image_size
        self.tile_sizes = tile_sizes  # "multiples" or "training size": what `tiles` can paint


def load_painter(source: Path, checkpoint: str | None = None) -> Painter:
    """The painter of a run folder (its `checkpoint`: best or newest, default the run's
    export_checkpoint) or of a SavedModel written by monet_gan."""
    if (source / "saved_model.pb").is_file():
        return _saved_model_painter(source)
    if not run_folder.holds_run(source):
        raise RunError(f"SOURCE {source} is neither a monet_gan run folder (it has no "
                       f"{run_folder.CONFIG_FILE}) nor a SavedModel (no saved_model.pb). Pass a run "
                       "folder made by monet_gan.train or the saved_model/ folder inside one.")
    config = run_folder.load_run_config(source)
    return generator_painter(artifacts.load_generator(source, config, checkpoint), config)


def generator_painter(generator: keras.Model, config: Config) -> Painter:
    """The painter of a generator trained with `config`: tiles go through a copy that takes any
    multiple of the training size (one compiled program per tile shape)."""
    tiler = networks.any_size_copy(generator, config)
    if keras.backend.backend() == "tensorflow":
        paint_tiles = tf.function(lambda images: translate(tiler, images, images.shape[1]))  # per tile shape
        paint_resized = tf.function(lambda images: translate(generator, images, config.image_size),
                                    reduce_retracing=True)
    else:
        compiled = steps.jax_inference(tiler)

        def paint_tiles(images):
            return translate(compiled, images, images.shape[1])

        def paint_resized(images):
            return translate(generator, images, config.image_size)

    return Painter(lambda tiles: keras.ops.convert_to_numpy(paint_tiles(tiles)),
                   lambda images: keras.ops.convert_to_numpy(paint_resized(images)),
                   config.image_size, "multiples")


def _saved_model_painter(source: Path) -> Painter:
    if keras.backend.backend() != "tensorflow":
        raise RunError(f"SOURCE {source} is a SavedModel, which only TensorFlow reads: pass the run "
                       "folder instead, or run with KERAS_BACKEND=tensorflow.")
    loaded = tf.saved_model.load(str(source))
    if not hasattr(loaded, "serve"):
        raise RunError(f"SOURCE {source} is a SavedModel without a `serve` function: not one "
                       "monet_gan exported. Pass the run folder it was trained in.")
    if not hasattr(loaded, "image_size"):
        raise RunError(f"SOURCE {source} does not say the size it was trained at (monet_gan "
                       "SavedModels do since they can paint tiles): export it again with "
                       "python -m monet_gan.export RUN_DIR, or pass the run folder.")
    size = int(loaded.image_size[0].numpy())

    def serve(images):
        return loaded.serve(tf.constant(images, tf.uint8)).numpy()

    def resized(images):  # brought to the training size here: `serve` paints near the photo's own size
        height, width = images.shape[1:3]
        painted = serve(keras.ops.convert_to_numpy(resize_to_uint8(images, size)))
        back = tf.image.resize(tf.cast(painted, tf.float32), (height, width), method="bilinear")
        return keras.ops.convert_to_numpy(round_to_uint8(back))

    return Painter(serve, resized, size, "training size")


def photo_files(sources: list[str]) -> list[tuple[str, list[str]]]:
    """(source, its JPEG/PNG files) for every PHOTOS argument: a file, folder or glob."""
    found = []
    for source in sources:
        files, kind = data_folder.files_and_kind(source, f"PHOTOS {source}")
        if kind != "images":
            raise DataError(f"PHOTOS {source} holds {'a zip' if kind == 'zip' else 'TFRecords'}: paint "
                            "takes JPEG/PNG photos. Paint a zip or TFRecords into images.zip with "
                            "python -m monet_gan.export RUN_DIR --photos SOURCE.")
        found.append((source, files))
    return found


def read_photo(path: str, max_pixels: float) -> np.ndarray:
    """uint8 [H, W, 3], turned as its EXIF orientation says. Raises ValueError saying why
    the file cannot be painted (judged from its header where it can be)."""
    if os.path.getsize(path) > data_folder.MAX_IMAGE_BYTES:
        raise ValueError(f"larger than {data_folder.MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(path) as image:
            if image.format not in ("JPEG", "PNG"):
                raise ValueError(f"a {image.format} image, not JPEG or PNG")
            if image.width * image.height > max_pixels:
                raise ValueError(f"{image.width}x{image.height} is {image.width * image.height / 1e6:.1f} "
                                 f"megapixels, more than --max-megapixels {max_pixels / 1e6:g}")
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except ValueError:
        raise
    except Exception as error:  # Pillow's decoders raise many kinds: OSError, SyntaxError, ...
        raise ValueError(f"not a readable JPEG or PNG image ({error})") from None


def encode(painting: np.ndarray, image_format: str) -> bytes:
    return artifacts.encode_jpeg(painting) if image_format == "jpeg" else encode_png(painting)


def output_names(files: list[str], out: Path, suffix: str) -> dict[str, Path]:
    """Each photo's painting: its file name with `suffix`, in `out`; a name two photos share
    (a.jpg, a.png, or files of two folders) gets -1, -2, ..."""
    used, names = set(), {}
    for path in files:
        stem, n = Path(path).stem, 1
        name = f"{stem}{suffix}"
        while name in used:
            name, n = f"{stem}-{n}{suffix}", n + 1
        used.add(name)
        names[path] = out / name
    return names


def paint_photos(painter: Painter, sources: list[tuple[str, list[str]]], out: Path, mode: str = "full",
                 image_format: str = "jpeg", tile: int | None = None, overlap: int | None = None,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, on_bad_record: str = "fail",
                 batch_size: int = 8) -> dict:
    """Paints every photo of `sources` (from `photo_files`) into `out`; returns the counts and
    the seconds per photo. A photo that cannot be read stops the run naming it, or with
    `on_bad_record` 'skip' is left out and counted."""
    tile = tile or painter.image_size
    overlap = tile // 4 if overlap is None else overlap
    every = [path for _, files in sources for path in files]
    names = output_names(every, out, FORMATS[image_format])
    for path, painting in names.items():
        if painting.resolve() == Path(path).resolve():
            raise OutputError(f"--out {out}: the painting of {path} would replace the photo itself. "
                              "Choose another --out folder or --format.")
    check_writable(out, "--out")
    painted, skipped, start = 0, [], time.perf_counter()
    for source, files in sources:
        print(f"{source}: {len(files)} photo{'s' * (len(files) != 1)}")
        progress = keras.utils.Progbar(len(files), unit_name="photo", verbose=1 if sys.stdout.isatty() else 2)
        for i, path in enumerate(files):
            try:
                photo = read_photo(path, max_megapixels * 1e6)
            except ValueError as error:
                if on_bad_record == "fail":
                    raise DataError(f"{path}: {error}. Remove it, or pass --on-bad-record skip to "
                                    "paint the others.") from None
                skipped.append(f"{path}: {error}")
                progress.update(i + 1)
                continue
            if mode == "full":
                painting = tiling.paint_in_tiles(painter.tiles, photo, tile, overlap, batch_size)
            else:
                painting = painter.resized(photo[np.newaxis])[0]
            write_atomically(names[path], encode(painting, image_format))
            painted += 1
            progress.update(i + 1)
    seconds = time.perf_counter() - start
    for problem in skipped:
        print(f"skipped {problem}", file=sys.stderr)
    if skipped:
        print(f"Skipped {len(skipped)} unreadable photo{'s' * (len(skipped) != 1)} (--on-bad-record skip).",
              file=sys.stderr)
    return {"painted": painted, "skipped": len(skipped), "seconds": seconds,
            "seconds_per_photo": seconds / max(painted, 1)}


def check_tile(painter: Painter, tile: int | None, overlap: int | None) -> None:
    """--tile must be a size the painter paints at; --overlap at most half of it."""
    size = painter.image_size
    if tile is not None:
        if painter.tile_sizes == "training size" and tile != size:
            raise ConfigError(f"--tile {tile}: a SavedModel paints tiles of its training size, {size}, "
                              "only. Leave --tile out, or pass the run folder.")
        if tile < size or tile % size:
            raise ConfigError(f"--tile {tile} must be a multiple of the training size, {size} "
                              f"({size}, {2 * size}, ...).")
    tile = tile or size
    if overlap is not None and not 0 <= overlap <= tile // 2:
        raise ConfigError(f"--overlap {overlap} must be between 0 and half the tile ({tile // 2}).")


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m monet_gan.paint", description=__doc__.split("\n")[0])
    parser.add_argument("source", metavar="SOURCE", help="a run folder, or a SavedModel monet_gan exported")
    parser.add_argument("photos", metavar="PHOTOS", nargs="+", help="JPEG/PNG files, folders or globs")
    parser.add_argument("--out", required=True, metavar="FOLDER", help="where the paintings go")
    parser.add_argument("--mode", choices=MODES, default="full",
                        help="full (default): the photo's own resolution, in blended tiles; resize: "
                             "painted at the training size and resized back")
    parser.add_argument("--format", choices=FORMATS, default="jpeg", help="of the paintings (default jpeg)")
    parser.add_argument("--tile", type=int, metavar="N",
                        help="tile side in --mode full: the training size (default) or a multiple")
    parser.add_argument("--overlap", type=int, metavar="N",
                        help="pixels neighbouring tiles share and blend across (default: a quarter tile)")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS, metavar="X",
                        help="larger photos are refused before they are decoded "
                             f"(default {DEFAULT_MAX_MEGAPIXELS:.1f})")
    parser.add_argument("--checkpoint", choices=EXPORT_CHECKPOINTS,
                        help="of a run folder: the best by FID or the newest (default: the run's)")
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="fail",
                        help="a photo that cannot be read: fail (default; stop, naming it) or skip it")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="tiles painted at once")
    args = parser.parse_args(argv)
    if not 0 < args.max_megapixels <= DEFAULT_MAX_MEGAPIXELS:
        raise ConfigError(f"--max-megapixels must be above 0 and at most {DEFAULT_MAX_MEGAPIXELS:.1f} "
                          f"(what any monet_gan command decodes). Received: {args.max_megapixels}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1. Received: {args.batch_size}")
    return args


def main(argv=None) -> int:
    def paint():
        args = parse_args(argv)
        sources = photo_files(args.photos)
        painter = load_painter(Path(args.source), args.checkpoint)
        check_tile(painter, args.tile, args.overlap)
        result = paint_photos(painter, sources, Path(args.out), args.mode, args.format, args.tile,
                              args.overlap, args.max_megapixels, args.on_bad_record, args.batch_size)
        print(f"Painted {result['painted']} photo{'s' * (result['painted'] != 1)} into {args.out} "
              f"({result['seconds_per_photo']:.2f} s per photo, --mode {args.mode}).")

    return cli.run(paint)


if __name__ == "__main__":
    sys.exit(main())
