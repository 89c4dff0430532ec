"""An import-linter ``layers`` contract that also sees the services.

``crisiswatch.listener``, ``crisiswatch.classifier`` and ``crisiswatch.alerter``
are sub-packages of ``crisiswatch`` whose sources live in ``services/`` (the
``[tool.setuptools.package-dir]`` table of ``pyproject.toml``). grimp builds
its graph by walking the root package's directory, so on its own it never
finds them: a layer naming a service would be missing, and the imports from
and into the services would go unchecked. This contract builds the graph with
every sub-package that table maps elsewhere, then checks the layers on it
exactly as the built-in ``layers`` contract does.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import grimp
from grimp.adaptors.packagefinder import ImportLibPackageFinder
from grimp.application.config import settings
from grimp.application.ports.filesystem import AbstractFileSystem
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import ContractCheck

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def mapped_packages(root: str, pyproject: Path = PYPROJECT) -> dict[str, Path]:
    """The sub-packages of ``root`` that ``package-dir`` places in a directory of their own."""
    table = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"].get("package-dir", {})
    return {name: pyproject.parent / path for name, path in table.items() if name.startswith(f"{root}.")}


class _MappedPackageFinder(ImportLibPackageFinder):
    """Finds the mapped sub-packages in their own directories, and every other package as grimp does."""

    def __init__(self, directories: Mapping[str, Path]) -> None:
        self.directories = directories

    def determine_package_directories(self, package_name: str, file_system: AbstractFileSystem) -> set[str]:
        """The directory ``package-dir`` gives a mapped package; otherwise the importable package's own."""
        if package_name in self.directories:
            return {str(self.directories[package_name].resolve())}
        return super().determine_package_directories(package_name, file_system)


def build_graph(roots: list[str]) -> grimp.ImportGraph:
    """The import graph of ``roots`` together with their mapped sub-packages."""
    directories = {name: path for root in roots for name, path in mapped_packages(root).items()}
    default = settings.PACKAGE_FINDER
    settings.configure(PACKAGE_FINDER=_MappedPackageFinder(directories))
    try:
        return grimp.build_graph(*roots, *directories, cache_dir=None)
    finally:
        settings.configure(PACKAGE_FINDER=default)


class LayersWithServicesContract(LayersContract):
    """The ``layers`` contract, checked on a graph that includes the mapped sub-packages."""

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        """Check the layers on the full graph (the one import-linter passes lacks the services)."""
        return super().check(build_graph(list(self.session_options["root_packages"])), verbose)
