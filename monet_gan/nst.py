"""A baseline without training: neural style transfer of each photo towards the Monet paintings.

    python -m monet_gan.nst --vgg-weights FILE [--data DIR] [--photos SOURCE] [--count 7000]
                            [--steps 200] [--out images.zip]

The style target is the mean Gram matrices of all the Monet paintings of the data folder; each
photo (of the data folder, or of --photos) is optimised from itself (`monet_gan.style_transfer`)
and written, 256x256, into the zip, like the CycleGAN's export. VGG19's ImageNet weights are
Keras' own file; get it once with

    curl -LO https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5

and pass it with --vgg-weights (Keras' cache, ~/.keras/models/, is looked in first).
"""

import itertools
import sys
import time
from pathlib import Path

import keras
import numpy as np

from monet_gan import artifacts, cli, data_folder, inputs, style_transfer
from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.errors import ConfigError, WeightsError
from monet_gan.files import check_file_destination
from monet_gan.translation import resize_to_uint8

KERAS_CACHE = Path.home() / ".keras" / "models" / style_transfer.VGG19_WEIGHTS_FILE


def weights_file(path: str | None) -> str | None:
    """The VGG19 weights to use: `path`, Keras' cached file, or None for 'random' (an
    untrained network: for tests, not for paintings)."""
    if path == "random":
        return None
    chosen = Path(path) if path else KERAS_CACHE
    if not chosen.is_file():
        where = f"--vgg-weights {path}: no such file" if path else f"no --vgg-weights and no {KERAS_CACHE}"
        raise WeightsError(f"{where}. Neural style transfer needs VGG19's ImageNet weights: download "
                           f"{style_transfer.VGG19_WEIGHTS_URL} and pass the file with --vgg-weights.")
    return str(chosen)


def transfer(args) -> dict:
    if keras.backend.backend() != "tensorflow":
        raise ConfigError("monet_gan.nst runs under Keras' TensorFlow backend only; run it with "
                          "KERAS_BACKEND=tensorflow.")
    weights = weights_file(args.vgg_weights)
    out = Path(args.out)
    check_file_destination(out, "--out")
    data_dir = data_folder.resolve_data_dir(args.data, inputs.isdir)
    paintings = inputs.ImageSet(data_folder.domain_folder(data_dir, "monet", inputs.isdir), args.on_bad_record,
                                flag="--data")
    photos = inputs.ImageSet(args.photos or data_folder.domain_folder(data_dir, "photo", inputs.isdir),
                             args.on_bad_record, flag="--photos")
    count = min(args.count, photos.count)
    try:
        network = style_transfer.feature_network(weights)
    except (OSError, ValueError) as error:
        raise WeightsError(f"--vgg-weights {weights}: not Keras' VGG19 weights file without the classifier "
                           f"({error}). Download {style_transfer.VGG19_WEIGHTS_URL}.") from None
    start = time.perf_counter()
    target = style_transfer.style_target(network, inputs.square_arrays(paintings, args.size))
    print(f"Style target from {paintings.count} paintings in {time.perf_counter() - start:.1f} s.")

    def painted():
        batch = []
        for photo, name in itertools.islice(photos.arrays(with_names=True), count):
            batch.append((photo, name))
            if len(batch) == args.batch_size:
                yield from paint(batch)
                batch = []
        if batch:
            yield from paint(batch)

    def paint(batch):
        images = np.stack([inputs_at_size(photo) for photo, _ in batch])
        result, (first, last) = style_transfer.stylize(network, images, target, args.steps, args.content_weight,
                                                       args.style_weight, args.learning_rate)
        print(f"  loss {first:.4g} -> {last:.4g}")
        if result.shape[1] != artifacts.SUBMISSION_SIZE:
            result = keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.round(keras.ops.image.resize(
                keras.ops.cast(result, "float32"), (artifacts.SUBMISSION_SIZE,) * 2)), "uint8"))
        return zip(result, [name for _, name in batch])

    def inputs_at_size(photo):
        if photo.shape[:2] == (args.size, args.size):
            return photo
        return keras.ops.convert_to_numpy(resize_to_uint8(photo[np.newaxis], args.size))[0]

    start = time.perf_counter()
    written = artifacts.write_zip(painted(), count, out)
    seconds = time.perf_counter() - start
    print(f"Wrote {out}: {written} photos in Monet's style ({seconds / written:.2f} s per photo).")
    return {"images_zip": out, "count": written, "seconds_per_photo": seconds / written}


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m monet_gan.nst", description=__doc__.split("\n")[0])
    parser.add_argument("--vgg-weights", metavar="FILE",
                        help=f"Keras' {style_transfer.VGG19_WEIGHTS_FILE} (default: Keras' cache); "
                             "'random': an untrained network, for tests")
    parser.add_argument("--data", help="a folder holding the Monet paintings and photos (default: Kaggle's)")
    parser.add_argument("--photos", metavar="SOURCE", help="other photos: a folder, glob or zip (default: the data's)")
    parser.add_argument("--count", type=int, default=7000, help="photos painted (the competition: 7000-10000)")
    parser.add_argument("--size", type=int, default=256, help="side the photos are optimised at")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps per photo")
    parser.add_argument("--batch-size", type=int, default=4, help="photos optimised at once")
    parser.add_argument("--content-weight", type=float, default=1e4)
    parser.add_argument("--style-weight", type=float, default=1e-2)
    parser.add_argument("--learning-rate", type=float, default=0.02, help="of Adam, on pixels in [0, 1]")
    parser.add_argument("--out", default="nst_images.zip", help="the zip of paintings (default nst_images.zip)")
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="fail",
                        help="an unusable image: fail (default; stop, naming it) or skip it")
    args = parser.parse_args(argv)
    for flag in ("count", "size", "steps", "batch_size"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1. Received: {getattr(args, flag)}")
    for flag in ("content_weight", "style_weight", "learning_rate"):
        if not getattr(args, flag) >= 0 or (flag == "learning_rate" and not args.learning_rate > 0):
            raise ConfigError(f"--{flag.replace('_', '-')} must be a number above 0. Received: {getattr(args, flag)}")
    return args


def main(argv=None) -> int:
    def run():
        transfer(parse_args(argv))

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
