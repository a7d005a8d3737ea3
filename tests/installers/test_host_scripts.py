"""installers/install-{reaper,ardour}-scripts.sh put the DAW scripts where each DAW looks.

Run for real with `sh` against a temporary HOME: where files land on Linux and (with a
`uname` that says Darwin) macOS, that a second run changes nothing, that an edited copy
is kept without --force, and that --uninstall takes away only what was installed.
The PowerShell twins cannot run here; they are checked to name the same places.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

REAPER_SH = ROOT / "installers/install-reaper-scripts.sh"
ARDOUR_SH = ROOT / "installers/install-ardour-scripts.sh"
MANIFEST = ".studio-bridge-installed"
REAPER_ACTIONS = sorted(p.name for p in (ROOT / "hosts/reaper/scripts").glob("*.py"))


def ardour_scripts() -> dict[str, str]:
    """What the Ardour installer should write: hosts/ardour/install.py's rendering."""
    from hosts.ardour.install import SCRIPTS, render

    return {f"studio_bridge_{name}.lua": render(name) for name in SCRIPTS}


def run(script: Path, home: Path, *args: str, env: dict | None = None, check: bool = True):
    environment = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME",)}
    environment |= {"HOME": str(home), "PYTHON": sys.executable, **(env or {})}
    done = subprocess.run(["sh", str(script), *args], env=environment, capture_output=True, text=True,
                          timeout=60, check=False)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def darwin(tmp: Path) -> dict:
    """PATH with a `uname` that answers Darwin, for the macOS paths."""
    fake = tmp / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "uname").write_text("#!/bin/sh\necho Darwin\n")
    (fake / "uname").chmod(0o755)
    return {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}


# -- REAPER ----------------------------------------------------------------------------
@pytest.mark.skipif(not REAPER_ACTIONS, reason="no hosts/reaper/scripts/*.py yet")
def test_reaper_scripts_land_in_the_resource_path_and_find_the_checkout(tmp_path):
    home = tmp_path / "home"
    done = run(REAPER_SH, home)
    dest = home / ".config/REAPER/Scripts/StudioBridge"
    assert sorted(p.name for p in dest.glob("*.py")) == REAPER_ACTIONS
    assert (dest / MANIFEST).is_file() and "Load ReaScript" in done.stdout
    for name in REAPER_ACTIONS:
        text = (dest / name).read_text()
        assert f'STUDIO_BRIDGE_ROOT = "{ROOT}"' in text
        assert text.replace(f'"{ROOT}"  # the checkout this was installed from', "") == \
            (ROOT / "hosts/reaper/scripts" / name).read_text().replace(
                '""  # the checkout; filled in when this file is copied elsewhere', "")
    # The copy, run from elsewhere, imports its modules from the checkout.
    probe = ("import sys; path = sys.argv[1]; code = open(path).read().split('from hosts.reaper')[0]; "
             "exec(code, {'__file__': path}); import hosts.reaper.entry as e; print(e.__file__)")
    shown = subprocess.run([sys.executable, "-I", "-c", probe, str(dest / REAPER_ACTIONS[0])], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert Path(shown.stdout.strip()) == ROOT / "hosts/reaper/entry.py"

    before = snapshot(dest)
    again = run(REAPER_SH, home)
    assert "up to date" in again.stdout and "installed" not in again.stdout.replace("installed from", "")
    assert snapshot(dest) == before


@pytest.mark.skipif(not REAPER_ACTIONS, reason="no hosts/reaper/scripts/*.py yet")
def test_reaper_paths_on_macos_and_with_xdg_config_home(tmp_path):
    run(REAPER_SH, tmp_path / "mac", env=darwin(tmp_path))
    assert (tmp_path / "mac/Library/Application Support/REAPER/Scripts/StudioBridge" / REAPER_ACTIONS[0]).is_file()
    config = tmp_path / "xdg"
    (config / "REAPER").mkdir(parents=True)
    run(REAPER_SH, tmp_path / "linux", env={"XDG_CONFIG_HOME": str(config)})
    assert (config / "REAPER/Scripts/StudioBridge" / REAPER_ACTIONS[0]).is_file()


# -- Ardour ----------------------------------------------------------------------------
def test_ardour_scripts_land_in_each_ardour_and_a_second_run_is_a_no_op(tmp_path):
    home = tmp_path / "home"
    want = ardour_scripts()
    done = run(ARDOUR_SH, home)
    for version in ("ardour7", "ardour8"):  # neither set up yet: both
        scripts = home / ".config" / version / "scripts"
        assert {p.name: p.read_text() for p in scripts.glob("*.lua")} == want
    assert "Script Manager" in done.stdout and "hosts.ardour.relay" in done.stdout

    before = snapshot(home)
    again = run(ARDOUR_SH, home)
    assert again.stdout.count("up to date") == 2 and snapshot(home) == before


def test_ardour_goes_only_to_the_ardour_that_is_set_up_and_honours_xdg(tmp_path):
    config = tmp_path / "xdg"
    (config / "ardour8").mkdir(parents=True)
    run(ARDOUR_SH, tmp_path / "home", env={"XDG_CONFIG_HOME": str(config)})
    assert sorted(p.name for p in (config / "ardour8/scripts").glob("*.lua")) == sorted(ardour_scripts())
    assert not (config / "ardour7").exists() and not (tmp_path / "home/.config").exists()


def test_ardour_paths_on_macos_and_port(tmp_path):
    run(ARDOUR_SH, tmp_path, "--port", "57001", env=darwin(tmp_path))
    for version in ("Ardour7", "Ardour8"):
        master = tmp_path / "Library/Preferences" / version / "scripts/studio_bridge_master.lua"
        assert "osc.udp://127.0.0.1:57001" in master.read_text()


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system python3")
def test_ardour_renders_with_a_python_without_the_project_dependencies(tmp_path):
    """The system python3 (no numpy, grpc, python-osc) renders the scripts; a bad port is refused."""
    run(ARDOUR_SH, tmp_path, env={"PYTHON": "/usr/bin/python3"})
    assert sorted(p.name for p in (tmp_path / ".config/ardour7/scripts").glob("*.lua")) == sorted(ardour_scripts())
    bad = run(ARDOUR_SH, tmp_path / "b", "--port", "99999", check=False)
    assert bad.returncode != 0 and not (tmp_path / "b/.config/ardour7/scripts").exists()


# -- both: --dest, edited copies, --force, --uninstall ----------------------------------
INSTALLERS = [pytest.param(REAPER_SH, id="reaper"), pytest.param(ARDOUR_SH, id="ardour")]


@pytest.mark.parametrize("script", INSTALLERS)
def test_edited_copies_are_kept_without_force_and_uninstall_removes_only_ours(script, tmp_path):
    if script == REAPER_SH and not REAPER_ACTIONS:
        pytest.skip("no hosts/reaper/scripts/*.py yet")
    dest, home = tmp_path / "some dest", tmp_path / "home"
    run(script, home, "--dest", str(dest))
    ours = sorted(p.name for p in dest.iterdir() if p.name != MANIFEST)
    assert ours and not home.exists()  # --dest: nothing in the default places

    edited, pristine = dest / ours[0], dest / ours[-1]
    original = edited.read_text()
    edited.write_text(original + "\n-- my change\n")
    (dest / "mine.txt").write_text("a user's own file")
    kept = run(script, home, "--dest", str(dest))
    assert "kept your changed" in kept.stdout and edited.read_text().endswith("-- my change\n")
    forced = run(script, home, "--dest", str(dest), "--force")
    assert "updated" in forced.stdout and edited.read_text() == original

    edited.write_text(original + "\n-- changed again\n")
    gone = run(script, home, "--dest", str(dest), "--uninstall")
    assert "kept your changed" in gone.stdout
    assert sorted(p.name for p in dest.iterdir()) == sorted([edited.name, "mine.txt"])  # manifest gone too
    assert not pristine.exists() or pristine == edited
    again = run(script, home, "--dest", str(dest), "--uninstall")  # idempotent
    assert "nothing of Studio Bridge's" in again.stdout and edited.exists()

    run(script, home, "--dest", str(dest), "--force")  # an edited copy is only replaced with --force
    run(script, home, "--dest", str(dest), "--uninstall")
    assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("script", INSTALLERS)
def test_unknown_option_is_refused(script, tmp_path):
    done = run(script, tmp_path, "--destination", "x", check=False)
    assert done.returncode == 2 and "--dest DIR" in done.stderr


# -- PowerShell twins ------------------------------------------------------------------
@pytest.mark.parametrize("host, places", [
    ("reaper", ["APPDATA", "REAPER", r"Scripts\StudioBridge", "hosts\\reaper\\scripts"]),
    ("ardour", ["LOCALAPPDATA", "Ardour7", "Ardour8", "scripts", "hosts.ardour.install"]),
])
def test_powershell_installers_match_the_shell_ones(host, places):
    sh = (ROOT / f"installers/install-{host}-scripts.sh").read_text()
    ps1 = (ROOT / f"installers/install-{host}-scripts.ps1").read_text()
    for word in places:
        assert word in ps1, word
    # The shell script documents the same Windows place, and both keep the same manifest.
    windows = re.search(r"Windows\s+(%\w+%\\\S+)", sh).group(1)
    assert windows.replace("%APPDATA%", "$env:APPDATA").replace("%LOCALAPPDATA%", "$env:LOCALAPPDATA").split("\\")[0] \
        in ps1
    assert MANIFEST in sh and MANIFEST in ps1
    for sh_option, ps_option in (("--dest", "$Dest"), ("--force", "$Force"), ("--uninstall", "$Uninstall")):
        assert sh_option in sh and ps_option in ps1
    if host == "ardour":
        assert "--port" in sh and "$Port" in ps1
    assert ps1.count("{") == ps1.count("}") and ps1.count("(") == ps1.count(")")
