"""The band: three monophonic players (bass, mid, high) that listen and answer.

``commands``: the meta-command vocabulary shared by the foot controller, the keyboard
and OSC. The rest is imported on first use (it needs torch, for the model).
"""

from .commands import COMMANDS, check_command, command_text, parse_command

_LAZY = {"Band": "band", "BandSettings": "band", "BandOutput": "live", "LiveBand": "live",
         "SessionClock": "live", "read_command_script": "live"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["Band", "BandSettings", "BandOutput", "LiveBand", "SessionClock", "COMMANDS", "check_command",
           "command_text", "parse_command", "read_command_script"]
