"""One CycleGAN training step per Keras backend, and the loop that runs it under JAX.

(The other backend-specific parts are small: the checkpoint format in `checkpoints`, the
devices in `distribute.choose`, and TensorFlow's own CPU kernels and SavedModel.)

What a step computes is shared `keras.ops` code: `CycleGAN.compute_losses` runs the four
networks, DiffAugment and the image history and returns the losses. What differs between
backends is how each network's objective is differentiated with respect to its own weights
and how its optimizer applies that:

- TensorFlow (the default, and the TPU path): a persistent `GradientTape` inside Keras' own
  `fit` (`CycleGAN.train_step`), under any `tf.distribute` strategy, with `FusedAdam`.
- JAX: `JaxStep`, one pure function of the whole state (the four networks' weights, every
  other variable the step reads or writes, and all four optimizers' variables), compiled once
  with `jax.jit`. Keras' JAX trainer carries only `model.optimizer`'s variables through its
  compiled step (keras-team/keras#19358, #18881), so four optimizers would lose three states;
  hence a step of our own instead of `fit`.
"""

import sys
import time

import keras
from keras import ops

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    from monet_gan.fused_adam import FusedAdam as Adam  # TensorFlow's one-kernel update
else:
    Adam = keras.optimizers.Adam
if keras.backend.backend() == "jax":
    import jax


def step_counter():
    """The variable counting a run's training steps (checkpointed): int64 under TensorFlow,
    as runs have always saved it; int32 under JAX, which has no 64-bit integers by default."""
    if keras.backend.backend() == "tensorflow":
        return tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    return keras.Variable(0, dtype="int32", trainable=False, name="step")


def tensorflow_train_step(model, photos, monets) -> dict:
    """One step of every network under TensorFlow; returns the trackers' running means.

    Losses are summed over this replica's examples and divided by the global batch
    (`tf.nn.compute_average_loss`), as gradients are summed across replicas.
    """
    with tf.GradientTape(persistent=True) as tape:
        per_example = model.compute_losses(photos, monets, training=True)
        losses = {k: tf.nn.compute_average_loss(v) for k, v in per_example.items()}
        # scale_loss is the identity but for float16 loss scaling (LossScaleOptimizer).
        objectives = [optimizer.scale_loss(losses[name])
                      for name, (optimizer, _) in zip(model.OBJECTIVES, model.optimized_networks())]
    for objective, (optimizer, network) in zip(objectives, model.optimized_networks()):
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
    del tape
    # Trackers average the per-replica means; replicas hold equal batches.
    for name, values in per_example.items():
        model.trackers[name].update_state(ops.mean(values))
    return {name: tracker.result() for name, tracker in model.trackers.items()}


class JaxStep:
    """The CycleGAN's training step under JAX, as a jit-compiled pure function.

        step = JaxStep(model)               # a compiled model
        state = step.state()                # arrays of every variable the step uses
        state, losses = step(state, photos, monets)
        step.write_back(state)              # into the model's variables (to save, to export)

    `losses` are the batch means of `model.compute_losses`. Each network is differentiated
    for its own objective only (`model.OBJECTIVES`), through one forward pass (`jax.vjp`).
    Under `keras.distribution.DataParallel` (set before the model is built) the weights are
    replicated and each batch split over the devices; the means are over the global batch,
    so a step on several devices is the step on one.
    """

    def __init__(self, model):
        self.model = model
        pairs = model.optimized_networks()
        self.optimizers = [optimizer for optimizer, _ in pairs]
        self.weights = [list(network.trainable_variables) for _, network in pairs]
        trained = {id(v) for weights in self.weights for v in weights}
        histories = [v for h in (model.histories or {}).values() for v in h.variables]
        others, seen = [], set()
        for v in [*model.non_trainable_variables, *histories]:  # dropout and random states, history
            if id(v) not in trained and id(v) not in seen:
                others.append(v)
                seen.add(id(v))
        self.others = others
        # The loss trackers' running means are updated inside the step too: on a GPU, their
        # eager updates cost more than half a step (bench/RESULTS.md).
        self.trackers = list(model.trackers.items())
        self.results = None  # the trackers' means after the last step, as device arrays
        self._compiled = jax.jit(self._step)

    def state(self) -> tuple:
        """(weights per network, other variables, optimizer variables per network), as arrays."""
        return ([[v.value for v in weights] for weights in self.weights],
                [v.value for v in self.others],
                [[v.value for v in optimizer.variables] for optimizer in self.optimizers])

    def write_back(self, state: tuple) -> None:
        weights, others, optimizer_values = state
        variables = [*(v for ws in self.weights for v in ws), *self.others,
                     *(v for o in self.optimizers for v in o.variables)]
        values = [*(x for xs in weights for x in xs), *others, *(x for xs in optimizer_values for x in xs)]
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    def __call__(self, state: tuple, photos, monets) -> tuple:
        distribution = keras.distribution.distribution()
        if distribution is not None:  # DataParallel: each device takes its slice of the batch
            photos, monets = (keras.distribution.distribute_tensor(x, distribution.get_data_layout(x.shape))
                              for x in (photos, monets))
        tracked = [[v.value for v in tracker.variables] for _, tracker in self.trackers]
        state, losses, tracked, self.results = self._compiled(state, tracked, photos, monets)
        for (_, tracker), values in zip(self.trackers, tracked):
            for variable, value in zip(tracker.variables, values):
                variable.assign(value)
        return state, losses

    def _step(self, state, tracked, photos, monets):
        state, losses = self._train(state, photos, monets)
        tracked = [tracker.stateless_update_state(values, losses[name])
                   for (name, tracker), values in zip(self.trackers, tracked)]
        results = {name: tracker.stateless_result(values) for (name, tracker), values in zip(self.trackers, tracked)}
        return state, losses, tracked, results

    def _train(self, state, photos, monets):
        weights, others, optimizer_values = state

        def objectives(weights):
            mapping = [*((v, x) for vs, xs in zip(self.weights, weights) for v, x in zip(vs, xs)),
                       *zip(self.others, others)]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                per_example = self.model.compute_losses(photos, monets, training=True)
            new_others = [scope.get_current_value(v) for v in self.others]
            losses = {name: ops.mean(values) for name, values in per_example.items()}
            return ops.stack([losses[name] for name in self.model.OBJECTIVES]), (losses, new_others)

        _, backward, (losses, new_others) = jax.vjp(objectives, weights, has_aux=True)
        new_weights, new_optimizer_values = [], []
        for i, optimizer in enumerate(self.optimizers):
            gradients = backward(ops.one_hot(i, len(self.optimizers)))[0][i]  # of objective i
            updated, updated_optimizer = optimizer.stateless_apply(optimizer_values[i], gradients, weights[i])
            new_weights.append(updated)
            new_optimizer_values.append(updated_optimizer)
        return (new_weights, new_others, new_optimizer_values), losses


def jax_inference(model: keras.Model):
    """`model(x, training=False)` as one jit-compiled JAX program, its weights passed in as
    arguments (a plain `jax.jit` of the call would bake them in as constants); for painting
    many batches with fixed weights (the export)."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def call(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    return lambda x, training=False: call(trainable, non_trainable, x)


def run_epochs(model, take_step, *, epochs: int, initial_epoch: int, steps_per_epoch: int,
               callbacks: list, verbose: int = 2) -> None:
    """The part of `model.fit` that training uses, for loops Keras' fit does not run:
    `take_step()` takes one step and returns the logs (the trackers' running means), or None to
    have them read from the model's trackers; the callbacks get the same calls and logs as
    under fit, and a line per epoch is printed."""
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for tracker in model.metrics:
            tracker.reset_state()
        callback_list.on_epoch_begin(epoch)
        start, logs = time.perf_counter(), {}
        for batch in range(steps_per_epoch):
            logs = take_step() or {tracker.name: float(tracker.result()) for tracker in model.metrics}
            callback_list.on_train_batch_end(batch, logs)
            if model.stop_training:
                break
        if verbose:
            seconds = time.perf_counter() - start
            print(f"Epoch {epoch + 1}/{epochs} - {seconds:.0f}s - "
                  + " - ".join(f"{k}: {v:.4f}" for k, v in sorted(logs.items())), flush=True)
        if hasattr(model, "sync_variables"):  # the epoch-end callbacks read the variables
            model.sync_variables()
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    sys.stdout.flush()


def fit_jax(model, pairs, *, epochs: int, initial_epoch: int, steps_per_epoch: int, callbacks: list,
            verbose: int = 2, **unused):
    """`model.fit` under JAX: `JaxStep` over the batches of `pairs` (a tf.data or any iterable
    of (photos, monets) arrays), with the same trackers, logs and callbacks. The state stays
    in the step's arrays between steps and is written into the model's variables whenever
    something reads them (`model.sync_variables`: at each epoch end and each checkpoint), so
    callbacks (checkpoints, sample grids, FID) read what they would under TensorFlow. One
    transfer per step brings the logs to the host."""
    step = JaxStep(model)
    state = [step.state()]
    batches = iter(pairs.as_numpy_iterator() if hasattr(pairs, "as_numpy_iterator") else pairs)

    def take_step() -> dict:
        photos, monets = next(batches)
        state[0], _ = step(state[0], photos, monets)
        return {name: float(value) for name, value in jax.device_get(step.results).items()}

    model.state_writer = lambda: step.write_back(state[0])
    try:
        run_epochs(model, take_step, epochs=epochs, initial_epoch=initial_epoch,
                   steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    finally:
        model.sync_variables()
        model.state_writer = None
