"""Notebook 05: YOLACT among the real-time instance segmenters.

- :mod:`.published`      the published speed/accuracy figures, tables and plots, measured latency
- :mod:`.yolact_plus`    what YOLACT++ adds: deformable convolutions and mask re-scoring
- :mod:`.mask_families`  the mask-assembly step of YOLACT's relatives, as small hand-set toys
- :mod:`.family_demos`   those toys drawn side by side
"""
