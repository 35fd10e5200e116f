"""Exception classes: one per Rust error variant, with the Rust message.

Every class derives from `shmstate.Error`; some also from the builtin a
Python user would catch (`Timeout` is a `TimeoutError`, `NotFound` a
`FileNotFoundError`, `PermissionDenied` a `PermissionError`).
"""


class Error(Exception):
    """A shmstate error (the base of all of them)."""


def _define(name, doc, *bases):
    cls = type(name, (Error, *bases), {"__doc__": doc, "__module__": "shmstate"})
    globals()[name] = cls
    return cls


_define("NotFound", "No object of that name.", FileNotFoundError)
_define("AlreadyExists", "The object exists (Writer.create).", FileExistsError)
_define("PermissionDenied", "The object's mode does not allow it.", PermissionError)
_define("InvalidName", "Not a valid object name.", ValueError)
_define("NotOwner", "The segment belongs to another user.")
_define("WriterBusy", "A live writer holds the object.")
_define("TypeMismatch", "The object holds another type.")
_define("FormatVersion", "The object was made by an incompatible version.")
_define("Corrupt", "The object's shared bookkeeping is inconsistent.")
_define("NotInitialized", "The object is still being created.")
_define("ReaderTableFull", "Every reader entry of the object is taken.")
_define("NoSpace", "The segment could not grow.")
_define("InvalidOption", "A writer option out of range.", ValueError)
_define("Os", "An operating system error.", OSError)
_define("TooLarge", "The value is larger than the object allows.")
_define("AllSlotsPinned", "Every slot is pinned by some reader.")
_define("Serialize", "The value could not be serialized.")
_define("Invalid", "Bytes or a value that do not fit the schema.", ValueError)
_define("GenerationsExhausted", "The object has no generation numbers left.")
_define("Empty", "Nothing was published yet.")
_define("Replaced", "The object under the name was replaced (follow=False).")
_define("Removed", "The object was removed.")
_define("ThreadExiting", "The helper thread is exiting.")
_define("Timeout", "The wait timed out.", TimeoutError)
_define("WriterDead", "The writer died (past the grace period).")
_define("Released", "The snapshot was released.")

__all__ = [n for n, v in globals().items() if isinstance(v, type) and issubclass(v, Error)]
