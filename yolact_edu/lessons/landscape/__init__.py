"""Notebook 05: YOLACT among the real-time instance segmenters.

- :mod:`.published`      the published speed/accuracy figures, with sources, as tables and charts
- :mod:`.measured`       this machine's latency beside them
- :mod:`.yolact_plus`    what YOLACT++ adds: deformable convolutions and mask re-scoring
- :mod:`.mask_families`  the mask-assembly step of YOLACT's relatives, as small hand-set toys
- :mod:`.family_demos`   those toys drawn side by side
"""
