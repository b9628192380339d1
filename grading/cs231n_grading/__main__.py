"""``python -m cs231n_grading``: same as ``cs231n-course``."""

import sys

from cs231n_grading.cli import main

sys.exit(main())
