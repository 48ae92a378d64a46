"""Writing files so that a reader never sees half of one."""

import os
import tempfile
from pathlib import Path


class OutputError(Exception):
    """An output folder that cannot be used; the message names it and the flag."""


def write_atomically(path: Path, content: bytes) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(content)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def check_writable(folder: Path, flag: str) -> None:
    """Creates `folder` if needed and writes a probe file there, so that an unwritable output
    folder is an error before any work starts (named by `flag`)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".monet_gan_probe"):
            pass
    except OSError as error:
        raise OutputError(f"{flag} {folder} cannot be written ({error.strerror}). Choose a "
                          "writable folder or fix its permissions.") from None
