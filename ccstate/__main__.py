"""``python -m ccstate``: the same as the ``ccstate`` console script."""

import sys

from ccstate.cli import main

sys.exit(main())
