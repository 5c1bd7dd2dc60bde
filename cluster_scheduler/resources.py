"""Files the package needs at run time that live in the repository's top-level folders.

config/default.yaml, k8s/rbac.yaml and scripts/build-controlplane.sh (with the Go modules it builds)
stay where they are in git, one copy each. The wheel build (setup.py) copies the files matched by
SHIPPED into the package as `cluster_scheduler/_resources/<same relative path>`, so an installed
package finds them without a checkout. `resource_path()` picks the checkout's copy when the package
runs from a checkout (an editable install, or PYTHONPATH), else the installed one.

Stdlib only: setup.py loads this file by path, before the package's dependencies are installed.
"""

from __future__ import annotations

from pathlib import Path

# Globs relative to the repository root; setup.py ships every file they match. The Go files are the
# ones scripts/build-controlplane.sh hashes and builds (it finds them beside itself, in controlplane/).
SHIPPED: tuple[str, ...] = (
    "config/default.yaml",
    "k8s/rbac.yaml",
    "scripts/build-controlplane.sh",
    "scripts/controlplane/*/go.mod",
    "scripts/controlplane/*/go.sum",
    "scripts/controlplane/*/cmd/*/*.go",
)

INSTALLED_DIR = "_resources"  # under the package directory, in an installed wheel


def checkout_root() -> Path | None:
    """The repository root when this package is imported from a checkout, else None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "scripts" / "build-controlplane.sh").is_file():
        return root
    return None


def installed_root() -> Path:
    """Where a wheel install keeps the shipped files (absent in a checkout that was never built)."""
    return Path(__file__).resolve().parent / INSTALLED_DIR


def resource_path(relative: str) -> Path:
    """Absolute path of `relative` (e.g. "k8s/rbac.yaml"): the checkout's file when running from a
    checkout, else the installed copy. The path may not exist (say, a file a checkout lacks);
    callers check and report it."""
    root = checkout_root()
    return (root if root is not None else installed_root()) / relative
