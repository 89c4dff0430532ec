"""Package discovery for the wheel; everything else about the project is declared in pyproject.toml.

The shared packages live under ``crisiswatch/``, while each service lives
under ``services/<name>/`` and installs as ``crisiswatch.<name>`` (the
``[tool.setuptools.package-dir]`` table). setuptools' declarative
``packages.find`` cannot search a folder that maps to another package name,
so the packages are found here instead of being listed by hand: a new
package, or a subpackage of a service, reaches the wheel without anyone
remembering to add it.
"""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_DIR: dict[str, str] = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
    "package-dir"
]


def found_packages() -> list[str]:
    """Every package under each mapped folder, named from the package its folder maps to."""
    packages: set[str] = set()
    for name, folder in PACKAGE_DIR.items():
        packages.add(name)
        packages.update(f"{name}.{sub}" for sub in find_packages(where=folder))
    return sorted(packages)


setup(packages=found_packages())
