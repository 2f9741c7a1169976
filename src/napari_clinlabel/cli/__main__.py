"""``python -m napari_clinlabel.cli``."""

import sys

from . import main

sys.exit(main())
