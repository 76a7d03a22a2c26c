"""Typed errors whose message is one line a user can act on.

The CLI prints ``str(error)`` and exits non-zero; nothing else reaches the user.
"""


class ImprovError(Exception):
    """Base of every error meant for the user. The message says what and what to do."""

    exit_code = 2


class AudioInputError(ImprovError):
    """No usable audio input: device missing, server down, file unreadable."""


class MidiError(ImprovError):
    """No usable MIDI system or port."""


class ConfigError(ImprovError):
    """A bad option, name or value given by the user."""


class ModelError(ImprovError):
    """The band model's weights are missing or unusable."""
