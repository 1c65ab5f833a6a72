"""hemato: intracranial hematoma segmentation on head CT and bleeding volume in ml."""

import os

# nothing in hemato reaches the network at run time: albumentations would otherwise check
# PyPI for a newer version on import
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
