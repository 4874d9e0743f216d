"""`python -m cli ARGS` runs the `kb` command."""

import sys

from .main import main

sys.exit(main())
