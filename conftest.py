"""Test-session settings shared by tests/ and notebooks/ (nbval runs the notebooks)."""
import os

# Notebooks (their kernels inherit this environment) and tests run the short variants of everything.
os.environ.setdefault("YOLACT_EDU_QUICK", "1")
