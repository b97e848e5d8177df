"""Build hook: put the built web console and the official store inside the wheel.

``pip wheel .`` and ``python -m build`` copy ``web/dist`` to ``stackhub/_console`` and ``store``
to ``stackhub/_store`` in the built package (``scripts/build-wheel`` builds the console first).
An editable install copies nothing: a checkout serves ``web/dist`` and ``store/`` in place.
Set ``STACKHUB_WHEEL_NO_CONSOLE=1`` to build a wheel without a console on purpose.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = {"_console": ROOT / "web" / "dist", "_store": ROOT / "store"}
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


class BuildWithData(build_py):
    """``build_py`` that also copies the console and the official store into the package."""

    def run(self) -> None:
        """Build the Python package, then add the bundled folders (not for editable installs)."""
        super().run()
        if getattr(self, "editable_mode", False):
            return
        console = BUNDLED["_console"]
        if not (console / "index.html").is_file() and os.environ.get(
                "STACKHUB_WHEEL_NO_CONSOLE") != "1":
            raise SystemExit(f"{console}/index.html is missing: build the console first with "
                             "scripts/build-web (or build the wheel with scripts/build-wheel); "
                             "STACKHUB_WHEEL_NO_CONSOLE=1 builds a wheel without it")
        if not (BUNDLED["_store"] / "apps").is_dir():
            raise SystemExit(f"{BUNDLED['_store']}/apps is missing: the official store")
        for name, source in BUNDLED.items():
            target = Path(self.build_lib) / "stackhub" / name
            shutil.rmtree(target, ignore_errors=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithData})
