"""Measuring: clocks that wait for the GPU, medians of repeated runs, the machine's name and
inference split into its stages."""
