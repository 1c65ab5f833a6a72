"""The paper's own figures (docs/paper.md, section 5; private data of 452 patients), shown beside ours."""

from __future__ import annotations

# model label -> (Rvd, Dice, IoU)
TABLE1 = {
    "FCN8s": (0.271, 0.789, 0.684),
    "SegNet": (0.238, 0.810, 0.712),
    "U-Net": (0.208, 0.833, 0.747),
    "Ours": (0.177, 0.856, 0.782),
}
# model label -> (RMSE ml, MAE ml)
TABLE2 = {"FCN8s": (9.498, 8.055), "SegNet": (8.707, 7.153), "U-Net": (7.479, 5.741), "Ours": (4.618, 3.614)}
TABLE3 = {"U-Net": (0.234, 0.813, 0.718), "Ours": (0.201, 0.838, 0.756)}  # irregular, seg
TABLE4 = {"U-Net": (14.613, 13.618), "Ours": (7.192, 6.246)}  # irregular, volume
TABLE5 = {"U-Net": (0.314, 0.761, 0.648), "Ours": (0.259, 0.798, 0.696)}  # near skull, seg
TABLE6 = {"U-Net": (19.872, 16.542), "Ours": (14.787, 12.062)}  # near skull, volume
# ablation: U-Net row from Table 1, then SA; SA+CA; SA+CA+SPA
TABLE7 = {
    "U-Net": (0.208, 0.833, 0.747),
    "U-Net+SA": (0.186, 0.849, 0.771),
    "U-Net+SA+CA": (0.181, 0.853, 0.777),
    "U-Net+SA+CA+SPA": (0.177, 0.856, 0.782),
}
NOTE = "paper: Li, Yu et al., private data (452 patients, 40 test), RTX 2060, 512x512, width 64"
