"""Image sets without TensorFlow, for Keras' JAX backend: a folder, a glob, a zip or one file,
of TFRecords or JPEG/PNG images, checked and decoded with Pillow.

This `ImageSet` is what `image_sets.ImageSet` is under TensorFlow (`inputs` chooses between
them): every image is checked once when the set is made (unusable ones fail, naming them, or
are left out with `on_bad_record` "skip"), nothing is decoded before its header says it fits
`MAX_IMAGE_PIXELS`, and the images come with the same names and content hash. A zip's entries
are judged by `data_folder.zip_members`, as TensorFlow's reader judges them.

TFRecords are read here without TensorFlow. A record is a little-endian uint64 length, the
masked CRC-32C of those 8 bytes, the data (a serialized `tf.train.Example`) and the data's masked
CRC-32C (tensorflow/core/lib/io/record_writer.cc); the Example's protobuf fields are read by
their numbers (tensorflow/core/example/example.proto, feature.proto).
"""

import hashlib
import io
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from monet_gan import data_folder
from monet_gan.data_folder import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, RECORD_SIZE

DECODE_THREADS = min(8, os.cpu_count() or 1)  # Pillow decodes without the GIL
CHUNK = 64  # images decoded at a time by `ImageSet.arrays`


# --- TFRecords ------------------------------------------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
        table.append(n)
    return table


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(payload: bytes) -> int:
    """CRC-32C (Castagnoli) of `payload`, masked as TFRecord files store it."""
    crc, table = 0xFFFFFFFF, _CRC32C_TABLE
    for byte in payload:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str) -> tuple[list[bytes], str | None]:
    """The records of a TFRecord file up to its first damage, and what that damage is (None
    for a whole file)."""
    records = []
    with open(path, "rb") as f:
        while header := f.read(12):
            if len(header) < 12:  # as TensorFlow's reader: a stub shorter than a header ends the file
                return records, None
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                return records, "a record's length fails its checksum (Is this even a TFRecord file?)"
            if length > MAX_IMAGE_BYTES:
                return records, f"a record of {length} bytes, more than {MAX_IMAGE_BYTES}"
            payload, footer = f.read(length), f.read(4)
            if len(payload) < length or len(footer) < 4:
                return records, "the file ends inside a record"
            if masked_crc32c(payload) != struct.unpack("<I", footer)[0]:
                return records, "a record's data fails its checksum"
            records.append(payload)
    return records, None


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        result |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return result, position


def _fields(message: bytes):
    """(field number, value) of each field of a protobuf message: an int for varints, bytes
    for everything else."""
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        wire_type = key & 7
        if wire_type == 0:
            value, position = _varint(message, position)
        elif wire_type in (1, 2, 5):
            if wire_type == 2:
                size, position = _varint(message, position)
            else:
                size = 8 if wire_type == 1 else 4
            if position + size > len(message):
                raise ValueError("truncated field")
            value, position = message[position:position + size], position + size
        else:
            raise ValueError(f"wire type {wire_type}")
        yield key >> 3, value


def _message(value) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("a number where a message belongs")
    return value


def example_bytes(serialized: bytes) -> dict[str, bytes]:
    """The first value of each bytes feature of a serialized `tf.train.Example`. Raises
    ValueError for what is no Example."""
    features = {}
    for number, value in _fields(serialized):  # Example.features = 1
        if number != 1:
            continue
        for entry_number, entry in _fields(_message(value)):  # Features.feature = 1: map entries
            if entry_number != 1:
                continue
            parts = dict(_fields(_message(entry)))  # key = 1, value = 2 (a Feature)
            key, feature = _message(parts.get(1, b"")).decode("utf-8", "replace"), _message(parts.get(2, b""))
            for kind, listed in _fields(feature):  # Feature.bytes_list = 1
                if kind == 1:
                    values = [_message(v) for n, v in _fields(_message(listed)) if n == 1]
                    if values:
                        features[key] = values[0]
    return features


# --- images ---------------------------------------------------------------------------

def decode(encoded: bytes) -> np.ndarray:
    """JPEG or PNG bytes (grey, palette or RGBA too) -> uint8 [H, W, 3]. Raises ValueError for
    anything else, a damaged image, or one over MAX_IMAGE_PIXELS (judged from its header)."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise ValueError(f"a {image.format} image")
            if not 0 < image.width * image.height <= MAX_IMAGE_PIXELS:
                raise ValueError(f"{image.width}x{image.height} pixels")
            return np.asarray(image.convert("RGB"))
    except ValueError:
        raise
    except Exception as error:  # Pillow's decoders raise many kinds: OSError, SyntaxError, ...
        raise ValueError(str(error)) from None


def _record_features(serialized: bytes) -> tuple[dict, str | None]:
    """A record's bytes features, and why it cannot be used (as `data.scan_records` words it)
    or None."""
    try:
        features = example_bytes(serialized)
    except ValueError:
        return {}, "is not a tf.train.Example, or its JPEG is corrupt"
    jpeg = features.get("image", b"")
    if not jpeg:
        return features, "has no `image` feature (the competition's records hold image_name, image and target)"
    if not jpeg.startswith(b"\xff\xd8\xff"):
        return features, "its `image` is not a JPEG"
    try:
        shape = decode(jpeg).shape
    except ValueError:
        return features, "is not a tf.train.Example, or its JPEG is corrupt"
    return features, None if shape == (RECORD_SIZE, RECORD_SIZE, 3) else "its image is not 256x256 RGB"


def _image_problem(path: str) -> str | None:
    if os.path.getsize(path) > MAX_IMAGE_BYTES:
        return f"{path}: larger than {MAX_IMAGE_BYTES} bytes"
    with open(path, "rb") as f:
        if not _readable(f.read()):
            return f"{path}: not a readable JPEG or PNG image (or over {MAX_IMAGE_PIXELS} pixels)"
    return None


def _readable(encoded: bytes) -> bool:
    try:
        decode(encoded)
    except ValueError:
        return False
    return True


def _stem(path: str) -> str:
    return PurePosixPath(path.replace("\\", "/")).stem


class ImageSet:
    """The usable images of a folder, glob, zip or file of TFRecords or JPEG/PNG images, with
    their names (the records' `image_name`, the files' and entries' names without suffix).

    Every image is checked when the set is made; `on_bad_record` says whether an unusable
    one fails (naming it) or is left out (`skipped` counts them). `flag` names the flag that
    gave `source` in errors. The records' JPEGs are kept in memory (the competition's 7038
    photos: 95 MB); image files are read again when their images are asked for.
    """

    decoder = "pillow"  # as `image_sets.ImageSet.decoder`: part of the cached features' name

    def __init__(self, source: str, on_bad_record: str = "fail", flag: str | None = None):
        data_folder.check_policy(on_bad_record)
        self.source = str(source)
        label = f"{flag} {source}" if flag else self.source
        self.files, self.kind = data_folder.files_and_kind(self.source, label)
        with ThreadPoolExecutor(DECODE_THREADS) as pool:
            if self.kind == "tfrecord":
                self._check_records(pool, on_bad_record)
            elif self.kind == "zip":
                self._check_zip(pool, on_bad_record)
            else:
                found = len(self.files)
                found_problems = list(pool.map(_image_problem, self.files))
                problems = [p for p in found_problems if p]
                self.files = [f for f, p in zip(self.files, found_problems) if not p]
                self.names = [_stem(f) for f in self.files]
                data_folder.apply_policy(problems, on_bad_record, len(self.files),
                                         os.path.dirname(self.files[0] if self.files else self.source) or ".",
                                         "Remove or replace those files")
                self.count, self.skipped = len(self.files), found - len(self.files)

    def _check_records(self, pool, on_bad_record: str):
        problems, records = [], []
        for path in self.files:
            found, damage = read_records(path)
            if damage:
                problems.append(f"{path} record {len(found)}: cannot be read, the file is truncated "
                                f"or corrupt from there on ({damage})")
            elif not found:
                problems.append(f"{path}: holds no records")
            records += [(path, index, record) for index, record in enumerate(found)]
        self.jpegs, self.names = [], []
        checked = pool.map(_record_features, [record for _, _, record in records])
        for (path, index, _), (features, problem) in zip(records, checked):
            if problem:
                problems.append(f"{path} record {index}: {problem}")
            else:
                self.jpegs.append(features["image"])
                self.names.append(features.get("image_name", b"").decode("utf-8", "replace"))
        data_folder.apply_policy(problems, on_bad_record, len(self.jpegs), ", ".join(self.files),
                                 "Rewrite the records with `python -m monet_gan.make_tfrecords`, "
                                 "which converts and resizes, or remove the file")
        self.count, self.skipped = len(self.jpegs), len(problems)

    def _check_zip(self, pool, on_bad_record: str):
        source = self.files[0]
        members, problems = data_folder.zip_members(source)
        readable = list(pool.map(_readable, data_folder.read_members(source, members)))
        problems += [f"{source}: entry {m!r}: not a readable JPEG or PNG image (or over {MAX_IMAGE_PIXELS} "
                     "pixels)" for m, ok in zip(members, readable) if not ok]
        self.members = [m for m, ok in zip(members, readable) if ok]
        self.names = [_stem(m) for m in self.members]
        data_folder.apply_policy(problems, on_bad_record, len(self.members), source,
                                 "Remove those entries from the zip")
        self.count, self.skipped = len(self.members), len(problems)

    def content_hash(self) -> str:
        """sha256 of the bytes of the set's files (all of them, as a cache key), as
        `image_sets.ImageSet` computes it."""
        digest = hashlib.sha256()
        for path in self.files:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def _encoded(self, indices: range) -> list[bytes]:
        if self.kind == "tfrecord":
            return [self.jpegs[i] for i in indices]
        if self.kind == "zip":
            return list(data_folder.read_members(self.files[0], [self.members[i] for i in indices]))
        encoded = []
        for i in indices:
            with open(self.files[i], "rb") as f:
                encoded.append(f.read())
        return encoded

    def arrays(self, with_names: bool = False):
        """The usable images, uint8 [H, W, 3] arrays, in order (with `with_names`, (image,
        name) pairs)."""
        with ThreadPoolExecutor(DECODE_THREADS) as pool:
            for start in range(0, self.count, CHUNK):
                indices = range(start, min(start + CHUNK, self.count))
                for index, image in zip(indices, pool.map(decode, self._encoded(indices))):
                    yield (image, self.names[index]) if with_names else image
