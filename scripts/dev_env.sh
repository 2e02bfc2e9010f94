# Source me: the environment every command of this project runs in (tests, demo, benches, helpers).
# Loopback-only DDS with a private domain, the pip-installed ROS prefix (the venv), offscreen MuJoCo,
# no hub downloads. Safe to source twice.
_vla_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_venv="$_vla_root/.venv"
export VIRTUAL_ENV="$_venv"
case ":$PATH:" in *":$_venv/bin:"*) ;; *) export PATH="$_venv/bin:$PATH" ;; esac
export AMENT_PREFIX_PATH="$_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
case ":${LD_LIBRARY_PATH:-}:" in *":$_venv/lib:"*) ;; *) export LD_LIBRARY_PATH="$_venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 1 + $$ % 200 ))}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH="$_vla_root/vla_eqm_ros:$_vla_root/vla_eqm_sim:$_vla_root/vla_eqm_train${PYTHONPATH:+:$PYTHONPATH}"
unset _vla_root _venv
