"""The public tutorial's way of training and exporting, kept as the yardstick for bench/speed.py.

Written as the Kaggle tutorial notebook does it (Amy Jang, "Monet CycleGAN Tutorial"):
six separate generator calls and four critic calls per step, Keras BCE with no reduction
(so each gradient is taken of a [batch, 30, 30] loss tensor, i.e. of its sum), four
gradient calls on a persistent tape, a plain `tf.function`; export one photo at a time,
each JPEG saved into a folder, then `shutil.make_archive`.
"""

import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def tutorial_model(config):
    """monet_gan's four networks for `config` in a `CycleGAN` with the tutorial's optimizers,
    Keras' own Adam(2e-4, beta_1=0.5), where `build_cyclegan` gives monet_gan's `FusedAdam`.
    Built in the same order, so the same seed gives both the same weights. Its convolutions
    are Keras' own layers, as the tutorial's are (`fastest_cpu_kernels` off)."""
    from monet_gan import cyclegan, networks

    config = config.replace(fastest_cpu_kernels=False)
    model = cyclegan.CycleGAN(
        photo_to_monet=networks.build_generator(config, name="photo_to_monet"),
        monet_to_photo=networks.build_generator(config, name="monet_to_photo"),
        monet_critic=networks.build_discriminator(config, name="monet_critic"),
        photo_critic=networks.build_discriminator(config, name="photo_critic"),
    )
    model.compile(*(keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in range(4)))
    return model


class TutorialStep:
    """One training step of the tutorial, on a `monet_gan.cyclegan.CycleGAN`'s networks and optimizers."""

    def __init__(self, model, cycle_weight: float = 10.0):
        self.m = model
        self.cycle_weight = cycle_weight
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)

    def generator_loss(self, generated):
        return self.bce(tf.ones_like(generated), generated)

    def discriminator_loss(self, real, generated):
        return (self.bce(tf.ones_like(real), real) + self.bce(tf.zeros_like(generated), generated)) * 0.5

    def cycle_loss(self, real, cycled):
        return self.cycle_weight * tf.reduce_mean(tf.abs(real - cycled))

    def identity_loss(self, real, same):
        return self.cycle_weight * 0.5 * tf.reduce_mean(tf.abs(real - same))

    @tf.function
    def __call__(self, real_photo, real_monet):
        m = self.m
        with tf.GradientTape(persistent=True) as tape:
            fake_monet = m.photo_to_monet(real_photo, training=True)
            cycled_photo = m.monet_to_photo(fake_monet, training=True)
            fake_photo = m.monet_to_photo(real_monet, training=True)
            cycled_monet = m.photo_to_monet(fake_photo, training=True)
            same_monet = m.photo_to_monet(real_monet, training=True)
            same_photo = m.monet_to_photo(real_photo, training=True)
            disc_real_monet = m.monet_critic(real_monet, training=True)
            disc_real_photo = m.photo_critic(real_photo, training=True)
            disc_fake_monet = m.monet_critic(fake_monet, training=True)
            disc_fake_photo = m.photo_critic(fake_photo, training=True)

            monet_gen_loss = self.generator_loss(disc_fake_monet)
            photo_gen_loss = self.generator_loss(disc_fake_photo)
            total_cycle_loss = (self.cycle_loss(real_monet, cycled_monet)
                                + self.cycle_loss(real_photo, cycled_photo))
            total_monet_gen_loss = monet_gen_loss + total_cycle_loss + self.identity_loss(real_monet, same_monet)
            total_photo_gen_loss = photo_gen_loss + total_cycle_loss + self.identity_loss(real_photo, same_photo)
            monet_disc_loss = self.discriminator_loss(disc_real_monet, disc_fake_monet)
            photo_disc_loss = self.discriminator_loss(disc_real_photo, disc_fake_photo)

        for loss, optimizer, network in (
            (total_monet_gen_loss, m.photo_to_monet_optimizer, m.photo_to_monet),
            (total_photo_gen_loss, m.monet_to_photo_optimizer, m.monet_to_photo),
            (monet_disc_loss, m.monet_critic_optimizer, m.monet_critic),
            (photo_disc_loss, m.photo_critic_optimizer, m.photo_critic),
        ):
            gradients = tape.gradient(loss, network.trainable_variables)
            optimizer.apply_gradients(zip(gradients, network.trainable_variables))
        return {
            "monet_generator_loss": tf.reduce_mean(total_monet_gen_loss),
            "photo_generator_loss": tf.reduce_mean(total_photo_gen_loss),
            "monet_critic_loss": tf.reduce_mean(monet_disc_loss),
            "photo_critic_loss": tf.reduce_mean(photo_disc_loss),
            "cycle_loss": total_cycle_loss,
        }


def tutorial_export(generator, photos, out_zip: Path, workdir: Path) -> int:
    """Translates uint8 256x256 photos one at a time, saves each JPEG, then zips the folder."""
    folder = workdir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(photos):
        image = tf.cast(photo[np.newaxis], tf.float32) / 127.5 - 1.0
        prediction = generator(image, training=False)[0].numpy()
        prediction = (prediction * 127.5 + 127.5).astype(np.uint8)
        (folder / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(prediction).numpy())
    shutil.make_archive(str(out_zip.with_suffix("")), "zip", folder)
    return len(photos)
