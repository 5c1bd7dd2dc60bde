#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Arguments go to pytest; without a path among them the
# whole of tests/ runs, e.g. `scripts/test.sh -m "not apiserver"` or `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
paths=(tests/)
for arg in "$@"; do
  case $arg in -*) ;; *) if [ -e "${arg%%::*}" ]; then paths=(); break; fi ;; esac
done
# lint first (a second): the project's ruff rules (pyproject.toml), over everything tested
.venv/bin/ruff check --quiet cluster_scheduler actors tests scripts setup.py
exec .venv/bin/pytest "${paths[@]}" "$@"
