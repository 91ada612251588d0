"""Error classes: each message says what went wrong and, where it can, what to do."""

from __future__ import annotations


class LtdError(Exception):
    """Base class; the CLI prints the message on one line and exits with 1."""


class InputError(LtdError):
    """A user-supplied file or value cannot be used (missing, undecodable, malformed)."""


class IdfError(InputError):
    """An IDF file is malformed."""


class StoreError(LtdError):
    """An HDF5 teacher file is unusable, or does not match the requested settings."""


class ModelError(LtdError):
    """A model folder is missing files or was written by an incompatible version."""


class MissingStepError(LtdError):
    """A pipeline step that a command depends on has not been run yet."""
