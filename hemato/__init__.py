"""hemato: intracranial hematoma segmentation on head CT and bleeding volume in ml."""

__version__ = "0.1.0"
