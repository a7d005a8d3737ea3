"""Install the Studio Bridge Lua scripts into Ardour's user script folder.

    python -m hosts.ardour.install [--config-dir ~/.config/ardour7] [--port 50553]

writes ``studio_bridge_<action>.lua`` into ``<config-dir>/scripts``: four
editor actions (Separate, Generate, Continue, Master) and an editor hook that
imports results as they finish. Each file is self-contained (Ardour loads every
script in its own Lua state): the shared code in ``lua/common.lua`` is baked
into each, with the relay's port.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import DEFAULT_PORT

LUA_DIR = Path(__file__).resolve().parent / "lua"
SCRIPTS = ("separate", "generate", "continue", "master", "collect")


def common(port: int = DEFAULT_PORT) -> str:
    """The shared Lua code (defines the local table ``SB``) with the relay port baked in."""
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"the relay's port must be 1-65535, got {port} (default {DEFAULT_PORT})")
    return (LUA_DIR / "common.lua").read_text(encoding="utf-8").replace("@PORT@", str(int(port)))


def render(name: str, port: int = DEFAULT_PORT) -> str:
    """One script's full text: ``lua/<name>.lua`` with the shared code inserted."""
    template = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    return template.replace("@COMMON@", common(port))


def default_config_dir(platform: str = sys.platform) -> Path:
    """Ardour's config folder on this system: the newest one set up, else Ardour 7's.

    Linux ``$XDG_CONFIG_HOME/ardour8|ardour7``, macOS ``~/Library/Preferences/Ardour8|Ardour7``,
    Windows ``%LOCALAPPDATA%\\Ardour8|Ardour7`` (the same places the installers use).
    """
    if platform == "darwin":
        base, names = Path.home() / "Library" / "Preferences", ("Ardour8", "Ardour7")
    elif platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        names = ("Ardour8", "Ardour7")
    else:
        base, names = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"), ("ardour8", "ardour7")
    for name in names:
        if (base / name).is_dir():
            return base / name
    return base / names[1]


def install(config_dir: Path, port: int = DEFAULT_PORT) -> list[Path]:
    """Write every script into ``<config_dir>/scripts``; returns the files written."""
    scripts = Path(config_dir) / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCRIPTS:
        target = scripts / f"studio_bridge_{name}.lua"
        target.write_text(render(name, port), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.ardour.install",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="Ardour's config folder (default: the newest Ardour set up on this system; "
                             "see installers/install-ardour-scripts.sh for the places)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the relay's UDP port")
    args = parser.parse_args(argv)
    try:
        written = install(args.config_dir or default_config_dir(), args.port)
    except ValueError as exc:
        parser.error(str(exc))
    for path in written:
        print(path)
    print("In Ardour: Edit > Lua Scripts > Script Manager: add the four 'Studio Bridge' actions "
          "and the 'Studio Bridge: Collect Results' editor hook. Run the relay: "
          "python -m hosts.ardour.relay", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
