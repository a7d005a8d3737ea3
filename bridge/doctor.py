"""`studio-bridge doctor`: check what the daemon and its engines need.

Each check answers ok, warn or fail with a detail and, when not ok, what to
do. Only a fail makes the command exit non-zero.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

from .core.config import DEFAULT_GRPC_PORT, DEFAULT_OSC_PORT, ENV_ADDR, default_addr, state_dir_default


def run_checks(addr: str | None = None, token: str | None = None) -> dict:
    checks = [_python(), _ffmpeg(), _device(), *_engines(), _audiocraft(), _opencv(), _models(),
              _state_dir(),
              _daemon(addr, token), *_ports()]
    failed = [c for c in checks if c["status"] == "fail"]
    result = {"ok": not failed, "checks": checks}
    if failed:
        result["error"] = {"code": "unavailable",
                           "message": "; ".join(f"{c['name']}: {c['detail']} ({c['fix']})" for c in failed)}
    return result


def _check(name: str, status: str, detail: str, fix: str = "") -> dict:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def _python() -> dict:
    ok = sys.version_info >= (3, 11)
    return _check("python", "ok" if ok else "fail", sys.version.split()[0],
                  "" if ok else "Python 3.11 or newer is needed")


def _ffmpeg() -> dict:
    path = shutil.which("ffmpeg")
    if not path:
        return _check("ffmpeg", "warn", "not on PATH (needed by video engines and for M4A checks)",
                      "install it: apt-get install ffmpeg (installers/setup.sh does)")
    first = subprocess.run([path, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return _check("ffmpeg", "ok", first)


def _device() -> dict:
    from .core import device

    memory = device.probe()
    detail = f"{memory.device}, {memory.total_bytes / 2**30:.1f} GiB total, " \
             f"{memory.available_bytes / 2**30:.1f} GiB available"
    if memory.device == "cpu":
        return _check("device", "ok", detail + " (no CUDA GPU: model engines run on the CPU)")
    return _check("device", "ok", detail)


def _registry():
    from .core.store import ModelStore
    from .engines import Registry

    registry = Registry()
    registry.bind_store(ModelStore(state_dir_default() / "models"))
    return registry


def _engines() -> list[dict]:
    out = []
    for name, engine, error in _registry().describe():
        if engine is None:
            out.append(_check(f"engine {name}", "warn", error, "install its extra (see README)"))
        else:
            out.append(_check(f"engine {name}", "ok", f"{engine.kind.value}, version {engine.version}"))
    return out


def _audiocraft() -> dict:
    """audiocraft is installed --no-deps beside a torch it does not name: prove it imports."""
    import importlib.metadata as meta

    fix = "run installers/setup.sh (it installs audiocraft 1.3.0 --no-deps with its real needs)"
    try:
        version = meta.version("audiocraft")
    except meta.PackageNotFoundError:
        return _check("audiocraft", "warn", "not installed: the generate engine cannot load "
                      "models", fix)
    try:
        from .engines.audiocraft_compat import import_musicgen, uses_stand_in

        import_musicgen()
    except Exception as exc:  # any import failure is the finding itself
        return _check("audiocraft", "fail", f"audiocraft {version} does not import: "
                      f"{type(exc).__name__}: {exc}", fix)
    import torch

    torchaudio = "stand-in (no torchaudio build loads beside this torch)" if uses_stand_in() \
        else "real torchaudio"
    return _check("audiocraft", "ok", f"audiocraft {version} imports with torch "
                  f"{torch.__version__}; torchaudio: {torchaudio}")


def _opencv() -> dict:
    """Video analysis needs OpenCV 4.x contrib: Haar cascades (gone in 5.x) and cv2.saliency
    (contrib only). A second OpenCV distribution installed later silently replaces cv2."""
    import importlib.metadata as meta

    fix = ("pip uninstall the other OpenCV packages, then run installers/setup.sh (it installs "
           "opencv-contrib-python-headless 4.x alone)")
    installed = []
    for dist in ("opencv-contrib-python-headless", "opencv-python-headless", "opencv-python",
                 "opencv-contrib-python"):
        try:
            installed.append(f"{dist} {meta.version(dist)}")
        except meta.PackageNotFoundError:
            pass
    if not installed:
        return _check("opencv", "warn", "not installed: video reframing cannot run",
                      "run installers/setup.sh (the reframe extra)")
    try:
        import cv2
    except ImportError as exc:
        return _check("opencv", "fail", f"cv2 does not import: {exc}", fix)
    faces = hasattr(cv2, "CascadeClassifier") and not cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml").empty()
    saliency = hasattr(cv2, "saliency") and hasattr(cv2.saliency,
                                                    "StaticSaliencySpectralResidual_create")
    detail = f"cv2 {cv2.__version__} from {', '.join(installed)}; face cascades " \
             f"{'ok' if faces else 'missing'}; saliency {'ok' if saliency else 'missing'}"
    if len(installed) > 1 or not (faces and saliency):
        return _check("opencv", "fail", detail, fix)
    return _check("opencv", "ok", detail)


def _models() -> dict:
    engines = [e for _, e, _ in _registry().describe() if e is not None and e.catalogue()]
    installed = [m.name for e in engines for m in e.models() if m.size_bytes]
    if not engines:
        return _check("weights", "ok", "no model engine installed; DSP engines need no weights")
    if not installed:
        offered = ", ".join(n for e in engines for n in e.catalogue()[:3])
        return _check("weights", "warn", "no model weights installed",
                      f"pull one, e.g. `studio-bridge models pull {offered.split(', ')[0]}` ({offered}, ...)")
    return _check("weights", "ok", f"installed: {', '.join(installed)}")


def _state_dir() -> dict:
    path = state_dir_default()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return _check("state dir", "fail", f"{path}: {exc}", "make it writable or pass --state-dir")
    return _check("state dir", "ok", str(path))


def _daemon(addr: str | None, token: str | None) -> dict:
    from .client import Client
    from .core.errors import BridgeError

    target = addr or os.environ.get(ENV_ADDR) or default_addr()
    try:
        with Client(target, token) as client:
            return _check("daemon", "ok", f"{target}: {client.health(timeout=2.0)}")
    except BridgeError:
        return _check("daemon", "warn", f"nothing answers at {target}",
                      "start it with `studio-bridge serve` (or a service unit from installers/)")


def _ports() -> list[dict]:
    out = []
    for label, port, kind in (("grpc port", DEFAULT_GRPC_PORT, socket.SOCK_STREAM),
                              ("osc port", DEFAULT_OSC_PORT, socket.SOCK_DGRAM)):
        probe = socket.socket(socket.AF_INET, kind)
        try:
            probe.bind(("127.0.0.1", port))
            out.append(_check(label, "ok", f"127.0.0.1:{port} is free"))
        except OSError:
            out.append(_check(label, "warn", f"127.0.0.1:{port} is in use (a running daemon, or "
                                             f"another program)", "if it is not the daemon, pass "
                                             "--grpc/--osc HOST:PORT to serve"))
        finally:
            probe.close()
    return out
