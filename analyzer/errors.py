"""The one exception type for errors a user can cause; the CLI prints it as one line and exits 2."""


class CallauditError(Exception):
    """A usage or input error: missing file, unknown format, bad policy, unreadable database."""
