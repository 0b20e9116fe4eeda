"""Errors every adapter raises: a refusal (permanent) or an unknown outcome (transient).

A refusal means the upstream answered "no": show its message, do not retry. An unknown outcome
means we did not get a usable answer (transport failure, timeout, unparsable reply): the
operation may or may not have happened upstream, so money flows query, retry or reverse.
"""

from __future__ import annotations


class UpstreamError(Exception):
    permanent: bool = False

    def __init__(self, system: str, message: str, *, code: str = "", operation: str = "") -> None:
        super().__init__(f"{system} {operation}: {message}".strip())
        self.system = system
        self.message = message
        self.code = code
        self.operation = operation


class UpstreamRefused(UpstreamError):
    """The upstream answered and refused; its ``message`` is fit to show (it is in Chinese)."""

    permanent = True


class UpstreamNotFound(UpstreamRefused):
    """The upstream answered that what we asked for does not exist (a patient, a person)."""


class UpstreamUnknown(UpstreamError):
    """No usable answer: timeout, connection failure or an unparsable reply."""

    permanent = False
