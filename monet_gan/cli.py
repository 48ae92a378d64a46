"""What the commands share: flags made from the `Config` fields, and one way to end.

`run(command, argv)` runs a command's body and turns every `MonetGanError` (a bad flag, bad
data, a bad run folder, an unwritable output, a stopped run) into one line on stderr and
its exit code. A bad flag's value is such an error too, also when argparse finds it. While
it runs, its output may lose its reader without stopping it (`OutputThatOutlivesItsReader`).
"""

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable

from monet_gan import config as config_lib
from monet_gan.errors import ConfigError, MonetGanError, TrainingStopped


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its usage errors raised as ConfigError (one line, exit code 2)."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


class OutputThatOutlivesItsReader:
    """sys.stdout or sys.stderr, except that when the pipe it writes to breaks (`train | tee
    log` whose tee the same Ctrl-C ended, `| head`), its file descriptor is pointed at
    os.devnull and the command goes on: a progress line or a message that no one can read any
    more must not end a training run before it saves. Anything else is the stream's own."""

    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._write_to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._write_to_devnull()

    def _write_to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError):
            self.stream.flush()  # what the broken pipe did not take, into devnull


def run(command: Callable[[], int | None]) -> int:
    """Calls `command()` and returns its exit code (0 when it returns None); a MonetGanError
    is printed as one line on stderr and ends with the error's exit code. Output whose
    reader has gone is dropped, not an error (`OutputThatOutlivesItsReader`)."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (s if s is None else OutputThatOutlivesItsReader(s) for s in streams)
    try:
        return command() or 0
    except MonetGanError as error:
        stopped_by_user = isinstance(error, TrainingStopped) and error.by_signal
        print(str(error) if stopped_by_user else f"error: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        sys.stdout, sys.stderr = streams


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `Config` field, named, typed and explained by the field (config.setting).
    Every flag defaults to None, meaning "keep the preset's (or the run's) value"."""
    group = parser.add_argument_group("config (defaults come from --preset; see --dry-run)")
    for field in dataclasses.fields(config_lib.Config):
        kind, meta = config_lib.value_type(field), field.metadata
        options = dict(dest=field.name, default=None, help=meta["help"].replace("%", "%%"))
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind
            options["metavar"] = ("|".join(meta["choices"]) if meta["choices"]
                                  else {int: "N", float: "X"}.get(kind, field.name.upper()))
        group.add_argument(config_lib.flag(field), **options)


def config_changes(args: argparse.Namespace) -> dict:
    """The config fields that flags set, by field name."""
    return {field.name: getattr(args, field.name) for field in dataclasses.fields(config_lib.Config)
            if getattr(args, field.name) is not None}
