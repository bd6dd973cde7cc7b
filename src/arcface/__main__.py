import sys

from arcface.cli import main

sys.exit(main())
