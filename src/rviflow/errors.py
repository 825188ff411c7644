"""User-facing errors: one line that names the subject, the file and what is wrong."""


class InputError(ValueError):
    """Bad input data. The message is shown to the user as is, on one line."""

    def __init__(self, message: str, subject: str | None = None, path: str | None = None):
        parts = [p for p in (subject, str(path) if path else None) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix and not message.startswith(prefix) else message)
        self.subject = subject
        self.path = path
        self.reason = message


class OutputError(OSError):
    """An output could not be written (disk full, no permission, read-only file system). Its
    message is one line naming the file and the OS error, e.g. ``cannot write X: No space left
    on device (ENOSPC)``; it is an OSError with the original errno."""

    def __init__(self, path, cause: OSError):
        import errno

        code = errno.errorcode.get(cause.errno, str(cause.errno))
        super().__init__(cause.errno, f"cannot write {path}: {cause.strerror or cause} ({code})", str(path))

    def __str__(self) -> str:
        return self.strerror
