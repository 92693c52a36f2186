"""User-facing errors.

Every error caused by bad input (a missing file, an invalid config field, a malformed task folder) is
raised as :class:`UserError` with a one-line message that names the file and/or field. The CLI prints
``echo-rl: error: <message>`` and exits with status 2; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class EchoRLError(Exception):
    """Base class of every error echo-rl raises on purpose."""


class UserError(EchoRLError):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        text = f"{where}: {message}" if where else message
        super().__init__(" ".join(text.split("\n")))
