"""The messages users see. Each names the bad value (file, line) and says what to do.

The library raises these; the CLI prints them as one line and exits non-zero (or, in a
batch, records them against the file and goes on). Anything that is not a ChurnwatchError
is a bug.
"""

from __future__ import annotations


class ChurnwatchError(Exception):
    """An error a user can fix; str(error) is the whole message."""


class AudioError(ChurnwatchError):
    """A recording that cannot be decoded or holds no speech."""


class ModelMissing(ChurnwatchError):
    """Model weights that are not installed."""

    def __init__(self, name: str, engine: str | None = None, where: str = ""):
        cmd = f"churnwatch models install {name}" + (f" --engine {engine}" if engine else "")
        msg = f"Model {name!r}" + (f" for {engine}" if engine else "") + " is not installed"
        msg += f" (looked in {where})" if where else ""
        super().__init__(f"{msg}. Install it with: {cmd}")


class RuleError(ChurnwatchError):
    """A rule file that does not validate."""

    def __init__(self, path, message: str, line: int | None = None):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


class CsvRowError(ChurnwatchError):
    """A CRM export row that cannot be read."""

    def __init__(self, path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


class StorageError(ChurnwatchError):
    """The database refuses writes: disk full, a read-only file, no permission.

    Unlike a bad row or a bad file, it hits every later write too, so a batch stops at the first
    one (what was committed before it stays stored) instead of blaming the rows or files after it.
    """

    def __init__(self, where: str, cause: str, fix: str):
        super().__init__(f"The database at {where} cannot be written: {cause}. {fix}")
        self.where, self.cause, self.fix = where, cause, fix
