"""The daemon as a per-user service: a systemd user unit or a launchd agent.

`studio-bridge service install|uninstall|status` lands here. The files are
made by small pure functions (`systemd_unit`, `launchd_plist`) so both can be
checked on any machine; talking to the service manager goes through an
injected ``run`` so tests drive it without one. Library code: nothing here
prints or exits.
"""

from __future__ import annotations

import math
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.config import DEFAULT_GRPC_PORT, ENV_ADDR, ENV_TOKEN, default_addr
from .core.errors import BridgeError, Unavailable

UNIT_NAME = "studio-bridge.service"
LAUNCHD_LABEL = "org.studio-bridge.daemon"
# Options whose values are paths: made absolute, since a service does not start in the user's cwd.
PATH_OPTIONS = ("state_dir", "socket", "media_root", "osc_socket", "token_file")

Run = Callable[[list[str]], "tuple[int, str]"]


class Unimplemented(BridgeError):
    """This platform has no service support yet."""

    code = "unimplemented"


def run_command(cmd: list[str]) -> tuple[int, str]:
    """Run a service-manager command; (exit code, stdout+stderr). A missing program is 127."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


# -- the command line the service runs ------------------------------------------------
def daemon_executable() -> list[str]:
    """This install's `studio-bridge`, absolute: the console script beside the interpreter.

    The interpreter's path is kept as it is (not resolved): in a venv it is a
    symlink, and resolving it would lose the venv. Without a console script
    (a bare checkout), ``python -m bridge``.
    """
    bindir = Path(os.path.abspath(sys.executable)).parent
    for name in ("studio-bridge", "studio-bridge.exe"):
        if (bindir / name).is_file():
            return [str(bindir / name)]
    return [os.path.abspath(sys.executable), "-m", "bridge"]


def serve_options(values: dict, defaults: dict, pin: tuple[str, ...] = ("state_dir",)) -> list[str]:
    """The `serve` options a user gave, as arguments for the service's command line.

    Args:
        values: parsed `serve` options (argparse dests), as the user gave them.
        defaults: the same options parsed from nothing.
        pin: options written even at their default (the state dir: the service's
            environment may not set XDG_STATE_HOME as the user's shell does).

    Returns:
        ``["--media-root", "/abs", "--keep-alive", "600", ...]``; paths absolute.
    """
    argv: list[str] = []
    for dest, default in defaults.items():
        value = values.get(dest, default)
        if value is None or (value == default and dest not in pin):
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, bool):  # a store_true switch: the flag alone
            argv += [flag] if value else []
            continue
        for item in value if isinstance(value, list) else [value]:
            if dest in PATH_OPTIONS and item:
                item = os.path.abspath(os.path.expanduser(str(item)))
            argv += [flag, _text(item)]
    return argv


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def option(argv: list[str], flag: str) -> str | None:
    """The last value of ``flag`` in a command line (``--x v`` or ``--x=v``), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(flag + "="):
            found = arg[len(flag) + 1:]
    return found


def stop_timeout(grace: float) -> int:
    """Seconds the manager waits after SIGTERM before SIGKILL.

    The daemon gives jobs, then RPCs, then model unloading up to ``grace`` each.
    """
    return math.ceil(3 * grace) + 10


# -- systemd --------------------------------------------------------------------------
def systemd_quote(arg: str) -> str:
    """One ExecStart word, as systemd reads it back.

    ``%`` (specifiers) and ``$`` (variables) are doubled; words with spaces,
    quotes, backslashes or nothing in them are double-quoted with C escapes.
    """
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in " \t\n\"'\\;"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def systemd_unit(argv: list[str], grace: float = 5.0, environment: dict | None = None) -> str:
    """The text of the user unit that runs ``argv`` (the daemon in the foreground).

    Args:
        argv: absolute executable and its arguments.
        grace: the daemon's --grace; the stop timeout is derived from it.
        environment: extra variables (e.g. the token); values are quoted.
    """
    env_lines = "".join(f"Environment={systemd_quote(f'{k}={v}')}\n" for k, v in (environment or {}).items())
    return (
        "# Written by `studio-bridge service install`; `studio-bridge service uninstall` removes it.\n"
        "[Unit]\n"
        "Description=Studio Bridge daemon (AI models for DAWs and editors)\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"ExecStart={' '.join(systemd_quote(a) for a in argv)}\n"
        f"{env_lines}"
        "# SIGTERM: jobs end interrupted, RPCs get --grace, models unload; then SIGKILL.\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        f"TimeoutStopSec={stop_timeout(grace)}\n"
        "Restart=on-failure\n"
        "RestartSec=2\n"
        "# 2: a usage error in the line above, which no restart mends.\n"
        "RestartPreventExitStatus=2\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def exec_start(unit_text: str) -> list[str]:
    """The argv of a unit's ExecStart (the inverse of `systemd_quote` for what we write).

    Raises:
        ValueError: no ExecStart in a [Service] section.
    """
    section = None
    for line in unit_text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and line.startswith("ExecStart="):
            value = line[len("ExecStart="):].lstrip("-@:+!")
            return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]
    raise ValueError("the unit has no ExecStart= in [Service]")


def systemd_unit_path(env: dict, home: Path) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


# -- launchd --------------------------------------------------------------------------
def launchd_plist(argv: list[str], log_dir: str, grace: float = 5.0, environment: dict | None = None,
                  label: str = LAUNCHD_LABEL) -> bytes:
    """The launch agent (XML plist) that runs ``argv`` at login and again after a crash.

    Args:
        argv: absolute executable and its arguments.
        log_dir: where stdout/stderr go (the daemon's state dir).
        grace: the daemon's --grace; launchd's ExitTimeOut is derived from it.
        environment: variables for the daemon; PATH should be among them (launchd's
            default finds no Homebrew ffmpeg).
    """
    job = {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        # Restarted when it crashes or exits non-zero; a clean stop stays stopped.
        "KeepAlive": {"SuccessfulExit": False, "Crashed": True},
        "ThrottleInterval": 10,
        "ExitTimeOut": stop_timeout(grace),
        "StandardOutPath": str(Path(log_dir) / "daemon.log"),
        "StandardErrorPath": str(Path(log_dir) / "daemon.log"),
    }
    if environment:
        job["EnvironmentVariables"] = dict(environment)
    return plistlib.dumps(job)


def launchd_plist_path(home: Path, label: str = LAUNCHD_LABEL) -> Path:
    return home / "Library" / "LaunchAgents" / f"{label}.plist"


# -- Windows --------------------------------------------------------------------------
def schtasks_command(argv: list[str]) -> str:
    """A Scheduled Task that starts the daemon at logon, for cmd.exe."""
    task = subprocess.list2cmdline(argv).replace('"', '\\"')  # quotes inside /TR "..." are \"
    return f'schtasks /Create /TN "Studio Bridge" /SC ONLOGON /RL LIMITED /TR "{task}"'


# -- install / uninstall / status -----------------------------------------------------
@dataclass
class Target:
    """Where this platform's service lives and how to talk to its manager."""

    kind: str  # systemd | launchd
    path: Path
    uid: int = 0

    @property
    def domain(self) -> str:
        return f"gui/{self.uid}"


def target(platform: str, home: Path, env: dict, uid: int | None = None,
           argv: list[str] | None = None) -> Target:
    """The service file for ``platform`` (a ``sys.platform`` value); ``argv`` words the Windows advice.

    Raises:
        Unimplemented: on Windows (and anything that is neither Linux nor macOS).
    """
    if platform.startswith("linux"):
        return Target("systemd", systemd_unit_path(env, home))
    if platform == "darwin":
        return Target("launchd", launchd_plist_path(home), os.getuid() if uid is None else uid)
    raise Unimplemented(
        f"`studio-bridge service` does not support {platform} yet (systemd user units on Linux, "
        f"launchd agents on macOS). Start the daemon at logon with a Scheduled Task instead: "
        f"{schtasks_command(argv or [*daemon_executable(), 'serve'])}")


def manager_available(t: Target, run: Run) -> bool:
    """Whether the user's service manager answers (no user systemd in containers, no GUI domain over ssh)."""
    if t.kind == "systemd":
        return shutil.which("systemctl") is not None and run(["systemctl", "--user", "show-environment"])[0] == 0
    return shutil.which("launchctl") is not None and run(["launchctl", "print", t.domain])[0] == 0


def _manager_commands(t: Target, action: str, changed: bool = True, loaded: bool = False) -> list[list[str]]:
    """What to tell the manager. An unchanged, loaded service is only started if it is not
    running: re-running install must not cut off the jobs of a daemon that is fine."""
    service = f"{t.domain}/{LAUNCHD_LABEL}"
    if t.kind == "systemd":
        if action == "install":
            return [["systemctl", "--user", "daemon-reload"],
                    ["systemctl", "--user", "enable", UNIT_NAME],
                    ["systemctl", "--user", "restart" if changed else "start", UNIT_NAME]]
        return [["systemctl", "--user", "disable", "--now", UNIT_NAME],
                ["systemctl", "--user", "daemon-reload"]]
    if action == "install" and not changed and loaded:
        return [["launchctl", "kickstart", service]]
    if action == "install":  # bootout first so a changed plist is read again
        return [["launchctl", "bootout", service], ["launchctl", "enable", service],
                ["launchctl", "bootstrap", t.domain, str(t.path)]]
    return [["launchctl", "bootout", service]]


def _tolerated(cmd: list[str]) -> bool:
    """Failures that only mean "already so": booting out what is not loaded, disabling what is absent."""
    return "bootout" in cmd or "disable" in cmd


def install(argv: list[str], *, platform: str = sys.platform, home: Path | None = None,
            env: dict | None = None, run: Run = run_command, grace: float = 5.0,
            token: str = "", state_dir: str | None = None) -> dict:
    """Write the service file for ``argv`` and start it when the manager answers.

    Args:
        argv: the daemon's absolute command line (see `daemon_executable`, `serve_options`).
        platform, home, env, run: the machine (injected for tests).
        grace: the daemon's --grace.
        token: STUDIO_BRIDGE_TOKEN for the daemon; written into the file (mode 0600), never argv.
        state_dir: the daemon's state dir (launchd logs go there).

    Returns:
        kind, file, changed, manager (available|unavailable), ran, next (commands left
        to run by hand), exec_start.

    Raises:
        Unimplemented: Windows.
    """
    env = dict(os.environ if env is None else env)
    home = Path.home() if home is None else home
    t = target(platform, home, env, argv=argv)
    environment = {ENV_TOKEN: token} if token else {}
    if t.kind == "systemd":
        content = systemd_unit(argv, grace, environment).encode()
    else:
        log_dir = state_dir or str(home / "Library" / "Logs" / "studio-bridge")
        Path(log_dir).mkdir(parents=True, exist_ok=True)  # launchd does not create the log's folder
        environment = {"PATH": env.get("PATH", "/usr/bin:/bin"), **environment}
        content = launchd_plist(argv, log_dir, grace, environment)
    changed = _write(t.path, content, private=bool(token))
    result = {"action": "install", "kind": t.kind, "file": str(t.path), "changed": changed,
              "exec_start": argv}
    if not manager_available(t, run):
        return result | _unavailable(_manager_commands(t, "install"))
    loaded = t.kind == "launchd" and run(["launchctl", "print", f"{t.domain}/{LAUNCHD_LABEL}"])[0] == 0
    return result | _drive(_manager_commands(t, "install", changed, loaded), run)


def uninstall(*, platform: str = sys.platform, home: Path | None = None, env: dict | None = None,
              run: Run = run_command) -> dict:
    """Stop and disable the service and remove its file; nothing there is not an error.

    Returns:
        kind, file, removed (whether a file was there), manager, ran, next.
    """
    env = dict(os.environ if env is None else env)
    t = target(platform, Path.home() if home is None else home, env)
    existed = t.path.exists()
    result = {"action": "uninstall", "kind": t.kind, "file": str(t.path), "removed": existed}
    commands = _manager_commands(t, "uninstall")
    if not manager_available(t, run):
        result |= _unavailable(commands if existed else [])
    elif existed or t.kind == "launchd":  # stop before the file goes (launchd needs only the label)
        result |= _drive(commands, run)
    else:
        result |= {"manager": "available", "ran": [], "next": []}
    if existed:
        t.path.unlink()
    return result


def status(*, platform: str = sys.platform, home: Path | None = None, env: dict | None = None,
           run: Run = run_command, addr: str | None = None, health: Callable[[str], str] | None = None,
           token: str | None = None) -> dict:
    """Is the service installed, enabled/loaded, and does a daemon answer?

    Args:
        addr: where to ask for health; default: $STUDIO_BRIDGE_ADDR, else the
            socket (or gRPC address) in the installed command line, else the default socket.
        health: addr -> "SERVING"/... or raises Unavailable (default: `bridge.client.Client.health`).
        token: sent with the default health check (a daemon listening beyond loopback).

    Returns:
        kind, file, installed, exec_start, manager, enabled, active, addr, daemon.
    """
    env = dict(os.environ if env is None else env)
    t = target(platform, Path.home() if home is None else home, env)
    argv = None
    if t.path.exists():
        try:
            argv = read_exec_start(t)
        except (ValueError, plistlib.InvalidFileException):  # edited by hand beyond reading: still installed
            argv = []
    result = {"action": "status", "kind": t.kind, "file": str(t.path), "installed": argv is not None,
              "exec_start": argv, "manager": "unavailable", "enabled": None, "active": None}
    if manager_available(t, run):
        result["manager"] = "available"
        if t.kind == "systemd":
            code, out = run(["systemctl", "--user", "is-enabled", UNIT_NAME])
            result["enabled"] = code == 0 and out.strip() == "enabled"
            code, out = run(["systemctl", "--user", "is-active", UNIT_NAME])
            result["active"] = out.strip() or ("active" if code == 0 else "inactive")
        else:
            code, out = run(["launchctl", "print", f"{t.domain}/{LAUNCHD_LABEL}"])
            result["enabled"] = code == 0  # loaded
            result["active"] = _launchd_state(out) if code == 0 else "not loaded"
    result["addr"] = addr or env.get(ENV_ADDR) or daemon_addr(argv or [])
    result["daemon"] = probe(result["addr"], health, token)
    return result


def read_exec_start(t: Target) -> list[str]:
    """The command line in an installed unit or plist."""
    if t.kind == "systemd":
        return exec_start(t.path.read_text())
    return list(plistlib.loads(t.path.read_bytes()).get("ProgramArguments", []))


def daemon_addr(argv: list[str]) -> str:
    """Where a daemon started with ``argv`` answers: its socket, else its gRPC address."""
    sock = option(argv, "--socket")
    if sock:
        return f"unix://{sock}"
    if sock == "":  # socket off: its TCP address
        return option(argv, "--grpc") or f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    return default_addr()


def probe(addr: str, health: Callable[[str], str] | None = None, token: str | None = None) -> str:
    """The daemon's health at ``addr``: SERVING, NOT_SERVING, ... or ``unavailable``."""
    if health is None:
        def health(a: str) -> str:
            from .client import Client

            with Client(a, token, timeout=2.0) as client:
                return client.health(timeout=1.5)
    try:
        return health(addr)
    except Unavailable:
        return "unavailable"
    except BridgeError as exc:
        return exc.code


def wait_serving(addr: str, token: str | None = None, seconds: float = 10.0) -> str:
    """Wait up to ``seconds`` for a just-started service to answer; its health then."""
    from .client import Client

    try:
        with Client(addr, token, timeout=2.0) as client:
            client.wait_until_serving(seconds)
    except BridgeError:
        pass  # said by the probe below
    return probe(addr, token=token)


def _launchd_state(printed: str) -> str:
    for line in printed.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep and key == "state":
            return value.strip()
    return "loaded"


def _unavailable(commands: list[list[str]]) -> dict:
    return {"manager": "unavailable", "ran": [], "next": [shlex.join(c) for c in commands]}


def _drive(commands: list[list[str]], run: Run) -> dict:
    """Run ``commands`` in order; stop at the first real failure and leave the rest as ``next``."""
    ran, left = [], []
    for i, cmd in enumerate(commands):
        code, out = run(cmd)
        ran.append({"command": shlex.join(cmd), "exit": code, "output": out})
        if code and not _tolerated(cmd):
            left = [shlex.join(c) for c in commands[i:]]
            break
    return {"manager": "available", "ran": ran, "next": left}


def _write(path: Path, content: bytes, private: bool) -> bool:
    """Atomically write ``content``; False when the file already held it."""
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)
    return True


def describe(result: dict) -> str:
    """A short readable form of an install/uninstall/status result."""
    kind = "systemd user unit" if result["kind"] == "systemd" else "launchd agent"
    action = result["action"]
    lines = []
    if action == "install":
        lines.append(f"{kind} {'written' if result['changed'] else 'unchanged'}: {result['file']}")
        lines.append(f"  runs: {shlex.join(result['exec_start'])}")
    elif action == "uninstall":
        lines.append(f"{kind} {'removed' if result['removed'] else 'was not installed'}: {result['file']}")
    else:
        lines.append(f"{kind}: {result['file']} ({'installed' if result['installed'] else 'not installed'})")
        if result["exec_start"]:
            lines.append(f"  runs: {shlex.join(result['exec_start'])}")
    if result.get("manager") == "unavailable":
        manager = "systemctl --user" if result["kind"] == "systemd" else "launchctl"
        lines.append(f"  manager: unavailable ({manager} does not answer here)")
    elif result.get("manager") == "available" and action == "status":
        lines.append(f"  {'enabled' if result['kind'] == 'systemd' else 'loaded'}: "
                     f"{'yes' if result['enabled'] else 'no'}; state: {result['active']}")
    lines += [f"  ran: {r['command']} -> exit {r['exit']}" + (f": {r['output']}" if r["exit"] else "")
              for r in result.get("ran", [])]
    if result.get("next"):
        lines.append("  to finish, run:" if action == "install" else "  also run:")
        lines += [f"    {c}" for c in result["next"]]
    if "daemon" in result:
        where = f" at {result['addr']}" if "addr" in result else ""
        lines.append(f"  daemon{where}: {result['daemon']}")
    if action == "install" and result["kind"] == "systemd":
        lines.append("  (to keep it running while you are logged out: loginctl enable-linger $USER)")
    return "\n".join(lines)
