"""``python -m napari_clinlabel.cli``."""

import sys

from napari_clinlabel.cli import main

sys.exit(main())
