"""``python -m libertem_gpu``: the ``libertem-gpu`` command line."""

import sys

from libertem_gpu.cli import main

sys.exit(main())
