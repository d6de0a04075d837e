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



def pytest_terminal_summary(terminalreporter):
    """End every run (also with -q) with the CPU it ran on and what that CPU computes natively:
    some tests depend on it and skip with the feature named where it is missing, so a red or
    skipped run must say on which kind of machine it ran."""
    import torch

    from yolact_edu.bench.cpu import this_cpu
    terminalreporter.write_line(f"cpu: {this_cpu().describe()}; {os.cpu_count()} cores, "
                                f"{torch.get_num_threads()} torch threads")
