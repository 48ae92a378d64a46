"""Writing a folder of images as competition-style TFRecords.

    python -m monet_gan.make_tfrecords IMAGE_DIR OUT_DIR --target monet|photo

Reads every JPEG or PNG in IMAGE_DIR (any size), resizes it to 256x256 (centre crop to a
square first, so nothing is stretched), and writes OUT_DIR/{target}_tfrec/{target}NN-COUNT.tfrec
with the features `image_name`, `image` (JPEG) and `target`, as the competition does. Run it
once per target and pass OUT_DIR to `python -m monet_gan.train --data`.
"""

import argparse
import os
import sys
from pathlib import Path

import tensorflow as tf

from monet_gan import data

TARGETS = ("monet", "photo")
JPEG_QUALITY = 95


def to_record_jpeg(image: tf.Tensor) -> bytes:
    """uint8 [H, W, 3] -> 256x256 JPEG bytes, centre-cropped to a square first."""
    height, width = image.shape[0], image.shape[1]
    side = min(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
    if side != data.RECORD_SIZE:
        image = tf.image.resize(image, [data.RECORD_SIZE] * 2, method="area", antialias=True)
        image = tf.cast(tf.round(image), tf.uint8)
    return tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy()


def make_example(name: str, jpeg: bytes, target: str) -> tf.train.Example:
    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image_name": bytes_feature(name.encode()),
        "image": bytes_feature(jpeg),
        "target": bytes_feature(target.encode()),
    }))


def write_tfrecords(image_dir: str, out_dir: str, target: str, per_file: int = 400) -> list[Path]:
    """Writes the images of `image_dir` as TFRecords of at most `per_file` records each.

    Each file is written under a temporary name and renamed when complete. Returns the files.
    """
    if target not in TARGETS:
        raise data.DataError(f"--target must be one of {', '.join(TARGETS)}. Received: {target!r}")
    if not os.path.isdir(image_dir):
        raise data.DataError(f"IMAGE_DIR {image_dir}: no such folder.")
    paths = data.list_images(image_dir)
    folder = Path(out_dir) / f"{target}_tfrec"
    if folder.exists() and any(folder.iterdir()):
        raise data.DataError(f"{folder} already holds files: remove them or choose another OUT_DIR.")
    folder.mkdir(parents=True, exist_ok=True)

    written = []
    for shard, start in enumerate(range(0, len(paths), per_file)):
        chunk = paths[start:start + per_file]
        path = folder / f"{target}{shard:02d}-{len(chunk)}.tfrec"
        partial = path.with_name(f".{path.name}.partial")
        try:
            with tf.io.TFRecordWriter(str(partial)) as writer:
                for image_path in chunk:
                    jpeg = to_record_jpeg(data.read_image_file(image_path))
                    example = make_example(data.path_stem(image_path), jpeg, target)
                    writer.write(example.SerializeToString())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        written.append(path)
        print(f"Wrote {path} ({len(chunk)} images).")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monet_gan.make_tfrecords",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("image_dir", metavar="IMAGE_DIR", help="folder of JPEG or PNG images")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="writes OUT_DIR/{target}_tfrec/")
    parser.add_argument("--target", required=True, choices=TARGETS)
    args = parser.parse_args(argv)
    try:
        write_tfrecords(args.image_dir, args.out_dir, args.target)
    except data.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
