"""Repository-wide pytest settings (``pytest --nbval book/`` loads them too; test helpers are in tests/conftest.py).

nbval runs every chapter with the quick profile, on any device: the committed outputs were made with it, and a GPU
would otherwise pick the full profile (``advlib.notebook.setup``) and train other models live. Set
``ADVLIB_PROFILE`` to run the chapters with another profile (their outputs will then differ from the committed ones).
"""
from __future__ import annotations

import os

PROFILE = "quick"
_before: dict[str, str | None] = {}


def pytest_runtest_setup(item) -> None:
    if str(item.path).endswith(".ipynb") and "ADVLIB_PROFILE" not in os.environ:
        _before["ADVLIB_PROFILE"] = None
        os.environ["ADVLIB_PROFILE"] = PROFILE  # the kernel nbval starts for the notebook inherits it


def pytest_runtest_teardown(item) -> None:
    if _before.pop("ADVLIB_PROFILE", "unset") is None:
        os.environ.pop("ADVLIB_PROFILE", None)
