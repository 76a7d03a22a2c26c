"""improv: a real-time improvisation partner for monophonic players."""

__version__ = "0.1.0"
