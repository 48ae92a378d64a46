"""What a run's data is, without TensorFlow: the competition's folder layouts, the size of its
images, the file suffixes read, and the policy for unusable inputs (`--on-bad-record`).

Shared by both inputs: `tf.data` (`data`, `image_sets`, `pipeline`) under Keras' TensorFlow
backend, numpy and Pillow (`numpy_images`, `numpy_pipeline`) under JAX.
"""

import dataclasses
import glob
import os
import sys
import zipfile
from collections.abc import Callable

from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.errors import DataError

RECORD_SIZE = 256  # the competition's images are 256x256
KAGGLE_DATA_DIR = "/kaggle/input/gan-getting-started"
TFRECORD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrecords")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUTS = ("tfrec", "jpg")  # {domain}_tfrec/, {domain}_jpg/: the first one there is read
MAX_IMAGE_BYTES = 64 * 2**20  # a bigger file is refused unread (zip bombs, stray files)
MAX_IMAGE_PIXELS = 64 * 2**20  # an image that would decode to more is refused undecoded
MAX_ZIP_ENTRIES = 100_000  # a zip with more entries is refused unread


def resolve_data_dir(data_dir: str | None, isdir: Callable[[str], bool] = os.path.isdir) -> str:
    """The folder holding `monet_tfrec/` and `photo_tfrec/` (or the `_jpg/` pair; flag --data).

    None means the Kaggle input folder, which must then exist. `isdir` answers for the
    path's file system (`tf.io.gfile.isdir` reads `gs://` too).
    """
    if data_dir is None:
        if isdir(KAGGLE_DATA_DIR):
            return KAGGLE_DATA_DIR
        raise DataError(
            "No data folder given and the Kaggle input folder "
            f"{KAGGLE_DATA_DIR} does not exist: pass --data DIR, a folder holding "
            "monet_tfrec/ and photo_tfrec/ (the competition's layout)."
        )
    if not isdir(data_dir):
        raise DataError(
            f"--data {data_dir}: no such folder. Pass a folder holding monet_tfrec/ and "
            "photo_tfrec/, e.g. the competition download or the shipped sample `tfrecords`."
        )
    return data_dir


def domain_folder(data_dir: str, domain: str, isdir: Callable[[str], bool] = os.path.isdir) -> str:
    """`{domain}_tfrec/` or, failing that, `{domain}_jpg/` of a data folder ('monet' or 'photo')."""
    for layout in LAYOUTS:
        folder = os.path.join(data_dir, f"{domain}_{layout}")
        if isdir(folder):
            return folder
    raise DataError(
        f"--data {data_dir} holds neither {domain}_tfrec/ nor {domain}_jpg/: pass a folder with "
        "monet_tfrec/ and photo_tfrec/, or monet_jpg/ and photo_jpg/ (the competition's layouts; "
        "`python -m monet_gan.make_tfrecords` writes the first from any image folder)."
    )


def check_enough_paintings(monets, global_batch_size: int) -> None:
    """A run needs one global batch of usable paintings (`monets`: an image set)."""
    if monets.count < global_batch_size:
        raise DataError(
            f"{monets.source} holds {monets.count} usable paintings, fewer than one global batch "
            f"of {global_batch_size}: lower --batch-size or add paintings."
        )


def stored_size(image_size: int, crops: bool) -> int:
    """The side at which a training pipeline keeps its images: the training size, or with
    `--crops` below 256 px the full 256, for random windows of the training size."""
    return RECORD_SIZE if crops and image_size < RECORD_SIZE else image_size


def check_policy(on_bad_record: str) -> None:
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise DataError(f"--on-bad-record must be one of {', '.join(BAD_RECORD_POLICIES)}. "
                        f"Received: {on_bad_record!r}")


def apply_policy(problems: list[str], on_bad_record: str, usable: int, where: str, fix: str):
    """Fails on the first problem ('fail'), or warns with their count ('skip'); no usable
    input at all fails either way."""
    if problems and on_bad_record == "fail":
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}. {fix}; or pass --on-bad-record skip to leave "
                        "unusable inputs out.")
    if usable == 0:
        first = f" ({len(problems)} unusable; the first: {problems[0]})" if problems else ""
        raise DataError(f"Nothing usable in {where}{first}. {fix}.")
    if problems:
        print(f"warning: left out {len(problems)} unusable inputs (--on-bad-record skip), "
              f"the first: {problems[0]}", file=sys.stderr)


def _unsafe_entry(name: str) -> bool:
    """A zip entry name that points outside the archive's own folder."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts


def zip_members(source: str) -> tuple[list[str], list[str]]:
    """The image entries of a zip that may be read, sorted, and a problem line for each entry
    that may not. Reads no entry: it judges them by their names and declared sizes (none over
    MAX_IMAGE_BYTES, none whose name leads out of the archive: they are never written anywhere,
    but such a zip was not made by this tool or for the competition)."""
    try:
        with zipfile.ZipFile(source) as archive:
            entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DataError(f"{source} is not a readable zip ({error}). Pass a zip of JPEG/PNG "
                        "images, or a folder of them.") from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise DataError(f"{source} holds {len(entries)} entries, more than {MAX_ZIP_ENTRIES}; not read.")
    problems, members = [], []
    for entry in entries:
        label = f"{source}: entry {entry.filename!r}"
        if _unsafe_entry(entry.filename):
            problems.append(f"{label} has a path leading out of the archive")
        elif not entry.filename.lower().endswith(IMAGE_SUFFIXES):
            problems.append(f"{label} is not a .jpg, .jpeg or .png file")
        elif entry.file_size > MAX_IMAGE_BYTES:
            problems.append(f"{label} expands to {entry.file_size} bytes, more than {MAX_IMAGE_BYTES}")
        else:
            members.append(entry.filename)
    return sorted(members), problems


def read_members(source: str, names: list[str]):
    """The bytes of the named entries of a zip, in order, never more than MAX_IMAGE_BYTES + 1
    of each, whatever its header claims."""
    with zipfile.ZipFile(source) as archive:
        for name in names:
            with archive.open(name) as member:
                yield member.read(MAX_IMAGE_BYTES + 1)


@dataclasses.dataclass(frozen=True)
class FileSystem:
    """How to list and open files: the local one, or TensorFlow's `tf.io.gfile` (`gs://` too)."""

    isdir: Callable = os.path.isdir
    listdir: Callable = os.listdir
    glob: Callable = glob.glob
    open: Callable = open


_MAGIC = {b"PK\x03\x04": "zip", b"\xff\xd8": "images", b"\x89PNG": "images"}
_KIND_NAMES = {"tfrecord": "TFRecords", "images": "JPEG/PNG images", "zip": "a zip"}


def file_kind(path: str, fs: FileSystem = FileSystem()) -> str:
    """'tfrecord', 'images' or 'zip': by the file's suffix, else by its first bytes."""
    lower = path.lower()
    if lower.endswith(TFRECORD_SUFFIXES):
        return "tfrecord"
    if lower.endswith(IMAGE_SUFFIXES):
        return "images"
    if lower.endswith(".zip"):
        return "zip"
    with fs.open(path, "rb") as f:
        head = f.read(4)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "tfrecord")


def files_and_kind(source: str, label: str, fs: FileSystem = FileSystem()) -> tuple[list[str], str]:
    """The files `source` names (a folder: its TFRecords or images; a glob; one file) and
    what they hold (`file_kind`); one kind only, and one zip at most. `label` names the
    source in errors."""
    if fs.isdir(source):
        names = sorted(n for n in fs.listdir(source) if not n.startswith("."))
        files = [os.path.join(source, n) for n in names if n.lower().endswith(TFRECORD_SUFFIXES + IMAGE_SUFFIXES)]
    else:
        files = [f for f in sorted(fs.glob(source)) if not fs.isdir(f)]
    if not files:
        raise DataError(f"{label}: found no zip, TFRecords or JPEG/PNG images there. Pass a "
                        "folder or glob of TFRecords or images, or a zip of images.")
    kinds = {file_kind(f, fs) for f in files}
    if len(kinds) > 1:
        found = " and ".join(_KIND_NAMES[k] for k in sorted(kinds))
        raise DataError(f"{label} holds {found}: pass a folder or glob of one kind.")
    [kind] = kinds
    if kind == "zip" and len(files) > 1:
        raise DataError(f"{label} matches {len(files)} zips: pass one zip at a time.")
    return files, kind
