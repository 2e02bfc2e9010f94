#!/usr/bin/env bash
# Build all four packages with colcon against the pip-installed ROS prefix (the venv), source the
# result, and import it: the proof that the manifests and CMakeLists work for a real ROS user.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS="${COLCON_WS:-$ROOT/build/colcon_ws}"
rm -rf "$WS" && mkdir -p "$WS"
cd "$WS"
start=$(date +%s)
colcon --log-base "$WS/log" build --base-paths "$ROOT" --build-base "$WS/build" --install-base "$WS/install" \
  --event-handlers console_cohesion- summary- status- desktop_notification- terminal_title- \
  --cmake-args -DPython3_EXECUTABLE="$(command -v python)" -DBUILD_TESTING=OFF >"$WS/colcon.log" 2>&1 \
  || { tail -40 "$WS/colcon.log" >&2; echo "[colcon] build FAILED (log: $WS/colcon.log)" >&2; exit 1; }
# The built workspace must import from a clean interpreter after `source install/setup.bash`,
# with the editable source checkout out of the way.
env -u PYTHONPATH bash -c "
  set -e
  source '$WS/install/setup.bash'
  cd /
  python - <<'PY'
import importlib, os, pathlib
from ament_index_python.packages import get_package_share_directory, get_package_prefix
from vla_eqm_msgs.msg import ActionChunk, DecoderStatus, EpisodeStatus
from vla_eqm_msgs.srv import ResetEpisode
for pkg, exes in {'vla_eqm_ros': ['policy_node', 'bringup'], 'vla_eqm_sim': ['sim_bridge', 'expert_node'],
                  'vla_eqm_train': ['vla-eqm']}.items():
    mod = importlib.import_module(pkg)
    assert '$WS/install' in mod.__file__ or 'colcon_ws' in mod.__file__, (pkg, mod.__file__)
    share = pathlib.Path(get_package_share_directory(pkg))
    assert (share / 'package.xml').is_file(), share
    for exe in exes:
        path = pathlib.Path(get_package_prefix(pkg), 'lib', pkg, exe)
        assert path.is_file() and os.access(path, os.X_OK), f'missing executable {path}'
print('[colcon] 4 packages built, sourced and imported from', '$WS/install')
PY
"
echo "[colcon] ok in $(( $(date +%s) - start )) s" >&2
