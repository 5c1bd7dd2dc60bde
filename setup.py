"""Build hook (metadata is in pyproject.toml): ship the run-time files of the top-level folders.

config/, k8s/ and scripts/ stay at the top of the repository, one copy each in git. A wheel gets the
files that cluster_scheduler/resources.py lists in SHIPPED copied to cluster_scheduler/_resources/,
and an sdist carries the originals so a wheel built from it does the same. An editable install
copies nothing: its package runs from the checkout and reads the files there.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _resources_module():
    spec = importlib.util.spec_from_file_location("_cs_resources", ROOT / "cluster_scheduler" / "resources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESOURCES = _resources_module()


def shipped_files() -> list[str]:
    """Repository-relative paths of the files to ship; a pattern that matches nothing is an error."""
    files: set[str] = set()
    for pattern in RESOURCES.SHIPPED:
        matched = [p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern) if p.is_file()]
        if not matched:
            raise FileNotFoundError(f"cluster_scheduler/resources.py SHIPPED: {pattern!r} matches no file")
        files.update(matched)
    return sorted(files)


class BuildPyWithResources(build_py):
    def _targets(self) -> list[tuple[Path, Path]]:
        dest = Path(self.build_lib) / "cluster_scheduler" / RESOURCES.INSTALLED_DIR
        return [(ROOT / rel, dest / rel) for rel in shipped_files()]

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for src, dst in self._targets():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)  # keeps the script's mode

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(dst) for _, dst in self._targets()]

    def get_source_files(self) -> list[str]:  # what an sdist carries
        return super().get_source_files() + shipped_files()


setup(cmdclass={"build_py": BuildPyWithResources})
