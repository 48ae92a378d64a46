"""Writing files so that a reader never sees half of one, and checking outputs before work starts."""

import os
import shutil
import tempfile
from pathlib import Path

from monet_gan.errors import OutputError


def write_atomically(path: Path, content: bytes) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(content)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def _named(path: Path, flag: str | None) -> str:
    return f"{flag} {path}" if flag else str(path)


def check_writable(folder: Path, flag: str | None) -> None:
    """Creates `folder` if needed and writes a probe file there, so that an unwritable output
    folder is an error before any work starts (named with `flag`, the flag that chose it)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".monet_gan_probe"):
            pass
    except OSError as error:
        raise OutputError(f"{_named(folder, flag)} cannot be written ({error.strerror}). Choose a "
                          "writable folder or fix its permissions.") from None


def check_free_space(folder: Path, needed: int, what: str, flag: str) -> None:
    """`needed` bytes (for `what`) must be free where `folder` is."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OutputError(f"{folder} has {free / 2**30:.2f} GiB free; {what} need about "
                          f"{needed / 2**30:.2f} GiB. Free some space or choose another {flag}.")


def check_file_destination(path: Path, flag: str | None) -> None:
    """`path` may be replaced by a file: it is not a folder, and its folder can be written.
    `flag` is the flag that chose `path` (None: it is the default place)."""
    path = Path(path)
    if path.is_dir():
        other = f" or pass another {flag}" if flag else ""
        raise OutputError(f"{_named(path, flag)} is a folder; the output is a file there. Move "
                          f"the folder away{other}.")
    check_writable(path.parent, flag)


def check_folder_destination(path: Path, flag: str | None) -> None:
    """`path` may be replaced by a folder: it is not a file, and its parent can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        other = f" or pass another {flag}" if flag else ""
        raise OutputError(f"{_named(path, flag)} is a file; the output is a folder there. Move "
                          f"the file away{other}.")
    check_writable(path.parent, flag)
