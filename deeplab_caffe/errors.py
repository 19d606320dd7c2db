"""The project's own exceptions.

Every error a user can cause with bad input is one of these (all are ValueError subclasses, so
``except ValueError`` also works).  Each carries enough context to find the mistake: the file,
line and column of a prototxt, the layer being built, or the byte offset in a binary file.

The command-line tools' exit statuses live here too (``EXIT_*``; each error class names its own
as ``exit_code``), so every tool maps an error to the same status.
"""

EXIT_OK = 0
EXIT_DIVERGED = 1        # training stopped: the loss or the weights became NaN/inf
EXIT_BAD_INPUT = 2       # a CaffeError: a bad file, flag or parameter
EXIT_WRITE_FAILED = 74   # sysexits.h EX_IOERR: a snapshot or output file could not be written


class CaffeError(ValueError):
    """Base class of every error raised for bad user input."""
    exit_code = EXIT_BAD_INPUT


class PrototxtError(CaffeError):
    """A text-format (prototxt / solver) file is malformed or does not match the schema.

    ``path``, ``line`` and ``column`` (1-based) locate the problem; ``str(err)`` starts with
    ``path:line:col:`` like a compiler message.
    """

    def __init__(self, message, path="<string>", line=None, column=None):
        self.path, self.line, self.column = path, line, column
        self.reason = message
        where = str(path)
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class NetError(CaffeError):
    """A net cannot be built or run: names the layer (and where it was declared, if known)."""

    def __init__(self, message, layer=None, where=None):
        self.layer, self.where, self.reason = layer, where, message
        prefix = ""
        if where:
            prefix += f"{where}: "
        if layer:
            prefix += f"layer '{layer}': "
        super().__init__(prefix + message)


class WireError(CaffeError):
    """A binary protobuf file (.caffemodel / .solverstate) is truncated or corrupt."""

    def __init__(self, message, offset=None, path=None):
        self.offset, self.path, self.reason = offset, path, message
        prefix = f"{path}: " if path else ""
        if offset is not None:
            prefix += f"byte {offset}: "
        super().__init__(prefix + message)


class CRFError(CaffeError):
    """Bad input to the dense CRF (shapes, dtypes, parameters)."""


class WriteError(CaffeError):
    """A file could not be written (disk full, permission denied, I/O error).  No partial file
    is left under ``path``; ``reason`` is the system's message."""
    exit_code = EXIT_WRITE_FAILED

    def __init__(self, message, path=None, reason=None):
        self.path, self.reason = path, reason
        super().__init__(message)
