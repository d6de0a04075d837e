"""``python -m yolact_edu.cli`` and ``torchrun -m yolact_edu.cli``: the ``yolact-edu`` command."""
import sys

from .main import main

sys.exit(main())
