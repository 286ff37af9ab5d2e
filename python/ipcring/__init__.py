"""ipcring: zero-copy shared-memory rings between processes.

Rings live in ``/dev/shm`` and are shared with Rust and C peers (the same layout, the same
library). A ring is SPSC (one producer, one consumer), MPMC (many of each, every message to one
consumer) or broadcast (one publisher, every message to every subscriber)::

    import ipcring
    tx = ipcring.Sender.create("jobs", "mpmc", slots=1024, slot_size=4096)
    rx = ipcring.Receiver.open("jobs", "mpmc")
    tx.send(b"hello")
    assert rx.recv(timeout=1.0) == b"hello"

Zero-copy: ``Sender.reserve()`` returns a writable ``memoryview`` of the next slot, published by
``commit(n)``; ``Receiver.recv_ref()`` borrows the next message in place (a read-only
``memoryview``, released by ``release()`` or a ``with`` block; ``numpy.frombuffer`` reads it
without a copy). Blocking calls release the GIL and are interrupted by Ctrl-C. Failures raise the
classes of ``ipcring.errors`` (all subclasses of ``ipcring.Error``).
"""

from . import errors
from ._ipcring import Message, Receiver, Sender, info, remove
from .errors import (
    AlreadyExists,
    Busy,
    Corrupted,
    Disconnected,
    Empty,
    Error,
    Full,
    Incompatible,
    InvalidArgument,
    Lagged,
    NotFound,
    PermissionDenied,
    SystemCallError,
    Timeout,
    TooLarge,
    Unsupported,
)

__all__ = [
    "Sender", "Receiver", "Message", "info", "remove", "errors",
    "Error", "Empty", "Full", "Timeout", "Disconnected", "Lagged", "TooLarge", "NotFound",
    "AlreadyExists", "PermissionDenied", "Busy", "Incompatible", "InvalidArgument", "Unsupported", "Corrupted",
    "SystemCallError",
]
