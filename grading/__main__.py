"""``python -m grading``: same as ``cs231n-course``."""

import sys

from grading.cli import main

sys.exit(main())
