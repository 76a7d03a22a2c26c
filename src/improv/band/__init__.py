"""The band: three monophonic players (bass, mid, high) that listen and answer.

``commands``: the meta-command vocabulary shared by the foot controller, the keyboard
and OSC.
"""
