"""Scoring paintings as Kaggle does: FID, memorization distance and MiFID, and KID beside them.

Small functions over Inception features (the competition's network, `monet_gan.inception`):
MiFID = FID / d_thr, where d is the mean over generated images of the minimum cosine
distance to the real ones and d_thr = d if d < 0.1 else 1.

KID (kernel inception distance, Binkowski et al. 2018) is not part of Kaggle's score. FID is
biased upward with few images (300 real Monet paintings against 300 others score about 77);
KID is an unbiased estimate, so it compares sets of different sizes and small sets fairly.
"""

import io
import sys

import keras
import numpy as np
import scipy.linalg

from monet_gan import inception
from monet_gan.errors import DataError
from monet_gan.files import write_atomically

MEMORIZATION_THRESHOLD = 0.1
FEATURE_BATCH = 32
SCORE_NAMES = ("fid", "memorization_distance", "mifid", "kid")  # what `score` returns


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


def nearest_real(generated: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each generated row, the memorization distance's term (the minimum over real rows of
    1 - |cos|) and the index of that nearest real row: [N] floats, [N] ints."""
    def normalised(rows):
        rows = np.asarray(rows, np.float64)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    distances = 1.0 - np.abs(normalised(generated) @ normalised(real).T)
    nearest = np.argmin(distances, axis=1)
    return distances[np.arange(len(nearest)), nearest], nearest


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

def _batches(images):
    """Batches of FEATURE_BATCH network inputs from uint8 images of any sizes."""
    batch = []
    for image in images:
        batch.append(inception.preprocess(image[np.newaxis])[0])
        if len(batch) == FEATURE_BATCH:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def inception_features(images, count: int | None = None, progress: bool = True) -> np.ndarray:
    """[N, 2048] `pool_3` features of uint8 images: an array [N, H, W, 3] or an iterable of
    [H, W, 3] arrays (of `count` images, for the progress bar)."""
    model = inception.load_model()
    if isinstance(images, np.ndarray):
        count = len(images)
    bar = keras.utils.Progbar(count, unit_name="image", verbose=1 if progress and sys.stdout.isatty() else 0)
    features, done = [], 0
    for batch in _batches(images):
        features.append(keras.ops.convert_to_numpy(model.predict_on_batch(batch)))  # traced once per model
        done += len(batch)
        bar.update(done)
    if not features:
        raise DataError("No images to score.")
    return np.concatenate(features)


def image_set_features(image_set, cache: bool = False) -> np.ndarray:
    """Inception features of an image set (an `inputs.ImageSet`); with `cache`, kept under the
    set's content hash and its decoder (for real sets, scored again and again; a cache shared by a
    TensorFlow and a JAX environment keeps one file for each decoder)."""
    if not cache:
        return inception_features(image_set.arrays(), image_set.count)
    path = inception.CACHE_DIR / "features" / f"{image_set.content_hash()}-{image_set.decoder}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    features = inception_features(image_set.arrays(), image_set.count)
    encoded = io.BytesIO()
    np.save(encoded, features, allow_pickle=False)
    write_atomically(path, encoded.getvalue())
    return features
