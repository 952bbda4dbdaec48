"""Entry point of ``python -m opsforge_core``."""

import sys

from opsforge_core.cli import main

sys.exit(main())
