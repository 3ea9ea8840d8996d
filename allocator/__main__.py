"""``python -m allocator`` runs the command line."""

import sys

from allocator.cli.main import main

sys.exit(main())
