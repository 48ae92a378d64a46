"""monet_gan: photos to Monet paintings with a CycleGAN (Keras 3 on TensorFlow or JAX).

Commands on top, importing nothing from each other: `train`, `export`, `paint`, `evaluate`,
`make_tfrecords`, and the baselines `dcgan` and `nst`. Below them, a run (`artifacts`,
`callbacks`, `checkpoints`, `distribute`), the input of the backend Keras runs on (`inputs`:
`pipeline` and `image_sets` with `tf.data`, `numpy_pipeline` and `numpy_images` under JAX,
without TensorFlow), images, figures and scores (`tiling`, `translation`, `figures`, `scores`,
`inception`), the models (`contrastive`, `cyclegan`, `noise_gan`, `style_transfer`, `steps`, `networks`,
`conv_kernels`, `fused_adam`, `diffaugment`), data (`data`, `data_folder`), and the base (`cli`,
`run_folder`, `config`, `files`, `errors`). A module imports only from modules after it in this
list.
"""

import os

# TensorFlow's C++ info and warning lines bury the progress bar; users can still set their own.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN CPU kernels on only for CPUs with AVX-512 VNNI/BF16 or AMX. On an
# AVX2 CPU they make the generator's batched inference 2.5x faster (0.10 vs 0.25 s per 256 px image
# at batch 8; bench/RESULTS.md) and training no slower. Results differ in the last float bits.
# It must be set before TensorFlow is imported; users can still set their own.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
