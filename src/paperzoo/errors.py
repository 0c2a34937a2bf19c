"""Errors caused by the user (bad config, missing data, bad input files).

The CLI prints these as one message and exits non-zero; every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; the message says what was wrong and how to fix it."""


class ConfigError(UserError):
    """An unknown config key or a value of the wrong type."""


class DataError(UserError):
    """A data source that is missing, truncated or in the wrong format."""
