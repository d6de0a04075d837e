"""Test-session settings shared by tests/ and notebooks/ (nbval runs the notebooks)."""
import atexit
import os
import shutil
import tempfile

# Notebooks (their kernels inherit this environment) and tests run the short variants of everything.
os.environ.setdefault("YOLACT_EDU_QUICK", "1")

# Notebooks use torchvision's COCO Mask R-CNN weights when they lie in the torch hub cache; a test
# run must not depend on what a user happens to have cached, so it gets an empty cache of its own.
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="yolact_edu_test_torch_home_")
atexit.register(shutil.rmtree, os.environ["TORCH_HOME"], ignore_errors=True)
