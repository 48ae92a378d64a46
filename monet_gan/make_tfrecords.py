"""Writing a folder of images as competition-style TFRecords.

    python -m monet_gan.make_tfrecords IMAGE_DIR OUT_DIR --target monet|photo

Reads every JPEG or PNG in IMAGE_DIR (any size), resizes it to 256x256 (centre crop to a
square first, so nothing is stretched), and writes OUT_DIR/{target}_tfrec/{target}NN-COUNT.tfrec
with the features `image_name`, `image` (JPEG) and `target`, as the competition does. Run it
once per target and pass OUT_DIR to `python -m monet_gan.train --data`. Nothing is left in
OUT_DIR unless every file was written.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

from monet_gan import data
from monet_gan.files import OutputError, check_writable

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


def write_tfrecords(image_dir: str, out_dir: str, target: str, per_file: int = 400,
                    on_bad_record: str = "fail") -> list[Path]:
    """Writes the images of `image_dir` as TFRecords of at most `per_file` records each.

    Every image is checked before anything is written (`on_bad_record`: an unreadable one
    fails, naming it, or is skipped). The files are written into a temporary folder that is
    renamed to OUT_DIR/{target}_tfrec only when all are complete. Returns the files.
    """
    if target not in TARGETS:
        raise data.DataError(f"--target must be one of {', '.join(TARGETS)}. Received: {target!r}")
    if not os.path.isdir(image_dir):
        raise data.DataError(f"IMAGE_DIR {image_dir}: no such folder.")
    folder = Path(out_dir) / f"{target}_tfrec"
    if folder.exists() and any(folder.iterdir()):
        raise data.DataError(f"{folder} already holds files: remove them or choose another OUT_DIR.")
    paths = data.scan_image_files(data.list_images(image_dir), on_bad_record)
    check_writable(folder.parent, "OUT_DIR")

    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        names = []
        for shard, start in enumerate(range(0, len(paths), per_file)):
            chunk = paths[start:start + per_file]
            names.append(f"{target}{shard:02d}-{len(chunk)}.tfrec")
            with tf.io.TFRecordWriter(str(partial / names[-1])) as writer:
                for image_path in chunk:
                    jpeg = to_record_jpeg(data.read_image_file(image_path))
                    example = make_example(data.path_stem(image_path), jpeg, target)
                    writer.write(example.SerializeToString())
            print(f"Wrote {folder / names[-1]} ({len(chunk)} images).")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return [folder / name for name in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monet_gan.make_tfrecords",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("image_dir", metavar="IMAGE_DIR", help="folder of JPEG or PNG images")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="writes OUT_DIR/{target}_tfrec/")
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--on-bad-record", choices=data.BAD_RECORD_POLICIES, default="fail",
                        help="an unreadable image: fail (default; stop, naming it) or skip it")
    args = parser.parse_args(argv)
    try:
        write_tfrecords(args.image_dir, args.out_dir, args.target, on_bad_record=args.on_bad_record)
    except (data.DataError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
