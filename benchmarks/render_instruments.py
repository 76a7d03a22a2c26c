#!/usr/bin/env python3
"""Instrument recordings with exact ground truth, rendered with FluidSynth (the renderer
lives in :mod:`improv.testing.instruments`, which documents the takes and the options)."""

import sys

from improv.testing.instruments import main

if __name__ == "__main__":
    sys.exit(main())
