"""monet_gan: photos to Monet paintings with a CycleGAN (TensorFlow / Keras 3)."""

import os

# TensorFlow's C++ info and warning lines bury the progress bar; users can still set their own.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
