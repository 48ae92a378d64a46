"""Every error a user can cause, as one family: a command prints it as one line and exits.

`MonetGanError` is the base; each kind names the flag, file or folder and what to do:
- `ConfigError`: a flag or config value that cannot be used;
- `DataError`: input data (records, images, zips, folders) that cannot be used;
- `RunError`: a run folder that cannot be used (not a run, already a run, no checkpoint);
- `OutputError`: an output that cannot be written (unwritable folder, full disk);
- `StrategyError`: an accelerator or cluster that was asked for and cannot be had;
- `WeightsError`: the Inception weights cannot be obtained;
- `TrainingStopped`: training ended early (a signal, a non-finite loss), with its exit code.

Anything else that escapes a command is a bug in monet_gan, and shows its traceback.
"""


class MonetGanError(Exception):
    """An error the user can fix; the message says how. Commands exit with `exit_code`."""

    exit_code = 2


class ConfigError(MonetGanError):
    """A config value or flag that cannot be used; the message names the flag."""


class DataError(MonetGanError):
    """Input data that cannot be used; the message names the file or flag."""


class RunError(MonetGanError):
    """A run folder that cannot be used; the message says what to do."""


class OutputError(MonetGanError):
    """An output that cannot be written; the message names it and the flag."""


class StrategyError(MonetGanError):
    """A distribution strategy that was asked for but cannot be had."""


class WeightsError(MonetGanError):
    """The Inception weights cannot be obtained or are not the expected file."""


class TrainingStopped(MonetGanError):
    """Training ended early; the message says why and how to go on. `exit_code` is 3 for a
    non-finite loss or weights, 128 + the signal's number for a stop signal."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    @property
    def by_signal(self) -> bool:
        """Stopped because the user asked (SIGTERM, Ctrl-C): not a failure."""
        return self.exit_code > 128
