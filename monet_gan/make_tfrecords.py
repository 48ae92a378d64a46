"""Writing a set of images as competition-style TFRecords.

    python -m monet_gan.make_tfrecords IMAGES OUT_DIR --target monet|photo

Reads every JPEG or PNG in IMAGES (a folder, glob or zip; any size), resizes it to 256x256
(centre crop to a square first, so nothing is stretched), and writes
OUT_DIR/{target}_tfrec/{target}NN-COUNT.tfrec with the features `image_name`, `image` (JPEG)
and `target`, as the competition does. Run it once per target and pass OUT_DIR to
`python -m monet_gan.train --data`. Nothing is left in OUT_DIR unless every file was written.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

from monet_gan import cli, data
from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.errors import ConfigError, DataError, OutputError
from monet_gan.files import check_writable
from monet_gan.image_sets import ImageSet

TARGETS = ("monet", "photo")
JPEG_QUALITY = 95


def to_record_jpeg(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> 256x256 JPEG bytes, centre-cropped to a square first."""
    return tf.io.encode_jpeg(data.square_to_uint8(image, data.RECORD_SIZE), quality=JPEG_QUALITY)


def make_example(name: bytes, jpeg: bytes, target: str) -> tf.train.Example:
    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image_name": bytes_feature(name),
        "image": bytes_feature(jpeg),
        "target": bytes_feature(target.encode()),
    }))


def write_tfrecords(images: str, out_dir: str, target: str, per_file: int = 400,
                    on_bad_record: str = "fail") -> list[Path]:
    """Writes the images of `images` (a folder, glob or zip) as TFRecords of at most
    `per_file` records each.

    Every image is checked before anything is written (`on_bad_record`: an unreadable one
    fails, naming it, or is skipped). The files are written into a temporary folder that is
    renamed to OUT_DIR/{target}_tfrec only when all are complete. Returns the files.
    """
    if target not in TARGETS:
        raise ConfigError(f"--target must be one of {', '.join(TARGETS)}. Received: {target!r}")
    folder = Path(out_dir) / f"{target}_tfrec"
    if folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
        raise OutputError(f"{folder} already holds files: remove them or choose another OUT_DIR.")
    image_set = ImageSet(images, on_bad_record, flag="IMAGES")
    if image_set.kind == "tfrecord":
        raise DataError(f"IMAGES {images} holds TFRecords already: pass JPEG/PNG images, or "
                        "use the TFRecords as they are.")
    check_writable(folder.parent, "OUT_DIR")

    jpegs = image_set.dataset(with_names=True).map(
        lambda image, name: (to_record_jpeg(image), name), num_parallel_calls=tf.data.AUTOTUNE)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        names = []
        for shard, chunk in enumerate(jpegs.batch(per_file).as_numpy_iterator()):
            names.append(f"{target}{shard:02d}-{len(chunk[0])}.tfrec")
            with tf.io.TFRecordWriter(str(partial / names[-1])) as writer:
                for jpeg, name in zip(*chunk):
                    writer.write(make_example(name, jpeg, target).SerializeToString())
            print(f"Wrote {folder / names[-1]} ({len(chunk[0])} images).")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return [folder / name for name in names]


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m monet_gan.make_tfrecords",
                                description=__doc__.split("\n")[0])
    parser.add_argument("images", metavar="IMAGES", help="a folder, glob or zip of JPEG or PNG images")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="writes OUT_DIR/{target}_tfrec/")
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="fail",
                        help="an unreadable image: fail (default; stop, naming it) or skip it")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    def run():
        args = parse_args(argv)
        write_tfrecords(args.images, args.out_dir, args.target, on_bad_record=args.on_bad_record)

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
