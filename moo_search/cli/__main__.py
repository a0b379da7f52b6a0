"""``python -m moo_search.cli``."""

import sys

from moo_search.cli import main

sys.exit(main())
