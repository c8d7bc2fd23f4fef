"""The errors a user is meant to read: each message names the key or file and what was expected.

Their own module, below everything that raises them, so that no module imports another only for
an exception class (``config`` and ``figures.choices``, ``checks`` and ``metrics`` did).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is expected."""


class InputMismatchError(ValueError):
    """An input file was edited or corrupted, contradicts the file it was derived from, or holds
    non-finite values; the message names the file and how to rebuild it."""
