"""`python -m townlet_core.cli` runs the `townlet` command (handy where scripts are not on PATH)."""

import sys

from townlet_core.cli import main

sys.exit(main())
