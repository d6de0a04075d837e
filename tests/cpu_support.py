"""What the CPU under the tests computes natively, for the tests whose outcome depends on it.

A test that needs a CPU feature says so with a mark from here and is skipped, with the feature and
this CPU named in the reason, where the feature is missing; the same behaviour is then checked from
the other side (the refusal) by a test that runs on every CPU."""
import pytest

from yolact_edu.bench.cpu import BF16_FLAGS, this_cpu

needs_native_bf16 = pytest.mark.skipif(
    not this_cpu().native_bf16,
    reason=f"needs a CPU with native bf16 ({', '.join(BF16_FLAGS[:2])}); this one has none: "
           f"{this_cpu().describe()} (where bf16 is refused: tests/test_precision.py)")
