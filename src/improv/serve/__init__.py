"""``improv serve``: one long-running improv for other programs — a DAW, a sequencer, a
live-coding setup — over OSC (:mod:`improv.serve.osc`) and HTTP (:mod:`improv.serve.http`).

:class:`~improv.serve.service.ServeService` holds the sessions (the same session, band,
timing and output code as ``improv listen``); the front ends only check messages and
hand them over. ``improv serve`` itself is in :mod:`improv.serve.cli`.
"""
