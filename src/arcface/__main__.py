"""``python -m arcface``: the same as the ``arcface`` command."""

import sys

from arcface.cli import run

sys.exit(run())
