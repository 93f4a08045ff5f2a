"""Entry point of `python -m rf_devstack`."""

import sys

from rf_devstack.cli import main

sys.exit(main())
