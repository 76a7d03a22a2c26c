"""``python3 -m improv``: the ``improv`` command."""

import sys

from .cli import main

sys.exit(main())
