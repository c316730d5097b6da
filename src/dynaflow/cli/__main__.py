"""``python -m dynaflow.cli``: the same as the ``dynaflow`` command."""

import sys

from dynaflow.cli import main

sys.exit(main())
