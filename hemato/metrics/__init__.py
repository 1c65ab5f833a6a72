"""Metrics stage: overlap (Dice, IoU, Rvd) per slice and per patient, volumes in ml."""
