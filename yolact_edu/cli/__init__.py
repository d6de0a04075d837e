"""The ``yolact-edu`` command: one module per command (``predict``, ``weights``, ``configs``,
``data``, ``demo``, ``train``, ``eval``, ``video``), each with ``add_parser(sub)`` and
``run(args)``; :mod:`.common` holds the options and error reporting they share and
:mod:`.main` the entry point (``yolact-edu``, ``python -m yolact_edu.cli``,
``torchrun -m yolact_edu.cli``)."""
from .main import main

__all__ = ["main"]
