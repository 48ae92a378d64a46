"""The input of the backend Keras runs on, chosen here once: `tf.data` under TensorFlow
(`image_sets`, `pipeline`: TPUs, `tf.distribute`, `gs://` paths), numpy and Pillow under JAX
(`numpy_images`, `numpy_pipeline`), which then needs no TensorFlow installed.

Both give the same names: `ImageSet(source, on_bad_record, flag)` (with `count`, `skipped`,
`source`, `decoder`, `content_hash()` and `arrays(with_names)`), `domain_set`, `training_sets`,
`square_arrays`, `training_batches` (what `fit` iterates), and `isdir` for data folders.
"""

import os

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    from monet_gan.image_sets import ImageSet
    from monet_gan.pipeline import domain_set, square_arrays, training_batches, training_sets

    isdir = tf.io.gfile.isdir  # local and gs:// paths
else:
    from monet_gan.numpy_images import ImageSet
    from monet_gan.numpy_pipeline import domain_set, square_arrays, training_batches, training_sets

    isdir = os.path.isdir

__all__ = ["ImageSet", "domain_set", "isdir", "square_arrays", "training_batches", "training_sets"]
