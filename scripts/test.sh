#!/usr/bin/env bash
# The test command behind `make test` and CI: lint, types, the colcon build check, then pytest.
# Extra arguments go to pytest (e.g. `make test PYTEST_ARGS="-k solver"`).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
step() { printf '\n=== %s ===\n' "$1"; }
fail() { printf '\n[test] FAILED at: %s\n' "$1" >&2; exit 1; }

step "ruff"
ruff check . || fail "ruff (run: source scripts/dev_env.sh && ruff check --fix .)"
step "mypy (core and policy node)"
mypy || fail "mypy"
if [ "${VLA_EQM_SKIP_COLCON:-0}" != 1 ]; then
  step "colcon build of the four packages against the pip ROS prefix"
  bash scripts/colcon_check.sh || fail "colcon build check"
fi
step "pytest"
python -m pytest "$@"
rc=$?
printf '\n[test] total %s s\n' "$(( $(date +%s) - t0 ))"
exit $rc
