"""The exceptions of ipcring: one class per status of the C API, all under ``ipcring.Error``."""


class Error(Exception):
    """Any failure of an ipcring call."""


class Empty(Error):
    """Nothing to receive (a call with ``timeout=0``)."""


class Full(Error):
    """No room to send (a call with ``timeout=0``)."""


class Timeout(Error, TimeoutError):
    """The time limit passed."""


class Disconnected(Error):
    """The other side is gone for good: nothing more will come, or nobody will read."""


class Lagged(Error):
    """A broadcast subscriber fell behind and ``count`` messages were overwritten (counted)."""

    def __init__(self, message, count=0):
        super().__init__(message, count)  # both in args: a pickled Lagged keeps its count
        self.count = count

    def __str__(self):
        return str(self.args[0])


class InvalidArgument(Error, ValueError):
    """An argument or a setting the ring cannot take (a name, slots not a power of two, a size
    over the system's limit, no space left for the ring)."""


class TooLarge(Error, ValueError):
    """The message is larger than the ring's slots."""


class NotFound(Error, FileNotFoundError):
    """No ring of that name."""


class AlreadyExists(Error, FileExistsError):
    """A ring of that name exists already."""


class PermissionDenied(Error, PermissionError):
    """The ring's file may not be opened by this user."""


class Busy(Error):
    """The role is held by another live endpoint, or every endpoint record is taken."""


class Incompatible(Error):
    """The ring is of another kind, or its settings differ from the request."""


class Unsupported(Error):
    """The operation does not apply: the wrong side, a zero-copy operation open, no readiness."""


class Corrupted(Error):
    """The ring's memory is corrupt or was truncated."""


class SystemCallError(Error, OSError):
    """A system call failed."""
