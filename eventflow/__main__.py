"""``python -m eventflow`` is the ``eventflow`` command."""

import sys

from eventflow.cli import main

sys.exit(main())
