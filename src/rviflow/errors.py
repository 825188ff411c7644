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
