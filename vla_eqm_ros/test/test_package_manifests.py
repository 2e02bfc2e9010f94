"""The four package manifests agree with what the packages actually install and import.

A ROS user builds these with colcon and rosdep; a manifest that forgets a message package, or
a setup.py entry point that names a missing module, only fails on their machine. These checks fail
here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[2]
PY_PACKAGES = ["vla_eqm_ros", "vla_eqm_sim", "vla_eqm_train"]
ALL_PACKAGES = ["vla_eqm_msgs", *PY_PACKAGES]
# Python imports that come from ROS packages, mapped to their rosdep keys.
ROS_IMPORTS = {
    "rclpy",
    "ament_index_python",
    "std_msgs",
    "std_srvs",
    "sensor_msgs",
    "geometry_msgs",
    "trajectory_msgs",
    "diagnostic_msgs",
    "visualization_msgs",
    "lifecycle_msgs",
    "rcl_interfaces",
    "rosgraph_msgs",
    "builtin_interfaces",
    "vla_eqm_msgs",
}


def _setup_call(pkg: str) -> ast.Call:
    tree = ast.parse((REPO / pkg / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            return node
    raise AssertionError(f"{pkg}/setup.py has no setup() call")


def _console_scripts(pkg: str) -> dict[str, str]:
    call = _setup_call(pkg)
    eps = next(k.value for k in call.keywords if k.arg == "entry_points")
    scripts = ast.literal_eval(eps)["console_scripts"]
    return dict(s.replace(" ", "").split("=", 1) for s in scripts)


def _imported_roots(pkg: str) -> set[str]:
    roots: set[str] = set()
    for path in (REPO / pkg / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("pkg", ALL_PACKAGES)
def test_manifest_is_format_3_and_names_its_folder(pkg):
    manifest = parse_package(str(REPO / pkg / "package.xml"))
    manifest.validate()
    assert manifest.package_format == 3
    assert manifest.name == pkg
    assert manifest.licenses, f"{pkg}: no license"
    build_type = manifest.get_build_type()
    assert build_type == ("ament_cmake" if pkg == "vla_eqm_msgs" else "ament_python")


@pytest.mark.parametrize("pkg", PY_PACKAGES)
def test_setup_py_name_and_version_match_the_manifest(pkg):
    manifest = parse_package(str(REPO / pkg / "package.xml"))
    src = (REPO / pkg / "setup.py").read_text()
    assert re.search(rf'package_name = "{pkg}"', src), f"{pkg}/setup.py: package_name is not {pkg}"
    version = next(k.value.value for k in _setup_call(pkg).keywords if k.arg == "version")
    assert version == manifest.version
    marker = REPO / pkg / "resource" / pkg
    assert marker.is_file(), f"{pkg}: ament index marker resource/{pkg} missing"


@pytest.mark.parametrize("pkg", PY_PACKAGES)
def test_every_console_script_points_at_an_existing_main(pkg):
    scripts = _console_scripts(pkg)
    assert scripts, f"{pkg} declares no executables"
    for exe, target in scripts.items():
        module, func = target.split(":")
        path = REPO / pkg / Path(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{pkg}: executable '{exe}' -> missing module {path}"
        funcs = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert func in funcs, f"{pkg}: executable '{exe}' -> {module} has no {func}()"


@pytest.mark.parametrize("pkg", PY_PACKAGES)
def test_installed_data_files_exist(pkg):
    # The data_files globs (launch/, config/) must match real files that the package refers to.
    for folder, pattern in [("launch", "*.launch.py"), ("config", "*.yaml")]:
        d = REPO / pkg / folder
        if d.is_dir() and any(d.iterdir()):
            assert list(d.glob(pattern)), f"{pkg}/{folder} has files but none match {pattern}"
    src = (REPO / pkg / "setup.py").read_text()
    assert '"share/" + package_name, ["package.xml"]' in src


@pytest.mark.parametrize("pkg", PY_PACKAGES)
def test_every_ros_package_the_code_imports_is_declared(pkg):
    manifest = parse_package(str(REPO / pkg / "package.xml"))
    declared = {d.name for d in manifest.exec_depends + manifest.build_export_depends}
    declared |= {d.name for d in getattr(manifest, "depends", [])}
    used = (_imported_roots(pkg) & ROS_IMPORTS) - {pkg}
    missing = used - declared
    assert not missing, f"{pkg} imports {sorted(missing)} but package.xml does not depend on them"


def test_message_cmakelists_lists_every_interface_file():
    cmake = (REPO / "vla_eqm_msgs" / "CMakeLists.txt").read_text()
    files = sorted(
        p.relative_to(REPO / "vla_eqm_msgs").as_posix()
        for p in (REPO / "vla_eqm_msgs").glob("*/*")
        if p.suffix in {".msg", ".srv", ".action"}
    )
    assert files, "vla_eqm_msgs has no interfaces"
    for f in files:
        assert f'"{f}"' in cmake, f"{f} is not passed to rosidl_generate_interfaces"
