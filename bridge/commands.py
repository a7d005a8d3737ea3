"""What each CLI command does. All but `serve` are clients of the daemon."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .core.errors import InvalidArgument


def _client(args):
    from .client import Client  # grpc loads only for commands that talk to a daemon

    return Client(args.addr, args.token)


def _job_result(job: dict) -> dict:
    """The CLI's one JSON shape for a job."""
    return {"job_id": job["job_id"], "state": job["state"], "engine": job["engine"], "model": job["model"],
            "outputs": [{"path": o["path"], "kind": o["kind"]} for o in job["outputs"]],
            "report": job["report"], "error": job["error"], "cached": job["cached"]}


class ProgressBar:
    """A one-line bar on stderr, drawn only on a terminal and without --json."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._last = ""

    def __call__(self, job: dict) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(job["progress"] * width)
        line = f"\r{job['state']:9} [{'#' * filled}{'.' * (width - filled)}] " \
               f"{job['progress'] * 100:5.1f}% {job['stage'][:40]:40}"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def close(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\n")


def run_job(args, engine: str, inputs: dict, params: dict, out_dir: str, **options) -> dict:
    bar = ProgressBar(not args.json)
    try:
        with _client(args) as client:
            job = client.run(engine, inputs, params, out_dir, on_event=bar, client="cli", **options)
    finally:
        bar.close()
    return _job_result(job)


# -- commands -------------------------------------------------------------------
def serve(args) -> int:
    import os

    from .cli import config_from_args
    from .core.publish import remember_user_umask
    from .daemon import Daemon

    logging.getLogger().setLevel(args.log_level.upper())
    # Everything the daemon makes for itself (records, cache, scratch, models) is
    # the owner's alone; outputs in the user's folders keep the user's umask.
    remember_user_umask()
    os.umask(0o077)
    daemon = Daemon(config_from_args(args)).start()
    info = daemon.endpoints()
    print(f"studio-bridge serving: grpc {info['grpc'] or 'off'}, socket {info['socket'] or 'off'}, "
          f"osc {info['osc'] or 'off'}, osc socket {info.get('osc_socket') or 'off'} (pid {info['pid']}); "
          f"TCP clients need the token in "
          f"{info['token_file'] or 'the file or environment it was given in'}",
          file=sys.stderr, flush=True)
    daemon.serve_forever(args.grace)
    return 0


def status(args) -> dict:
    with _client(args) as client:
        return client.status()


def jobs(args) -> dict:
    with _client(args) as client:
        return {"jobs": [_job_result(j) | {"created_at": j["created_at"]} for j in client.list_jobs(args.limit)]}


def job(args) -> dict:
    with _client(args) as client:
        return _job_result(client.get_job(args.job_id))


def watch(args) -> dict:
    bar = ProgressBar(not args.json)
    try:
        with _client(args) as client:
            return _job_result(client.wait(args.job_id, bar))
    finally:
        bar.close()


def cancel(args) -> dict:
    with _client(args) as client:
        return _job_result(client.cancel(args.job_id))


def engines(args) -> dict:
    with _client(args) as client:
        return {"engines": client.engines()}


def models(args) -> dict:
    if args.action in ("pull", "import", "remove"):
        return _store_action(args)
    with _client(args) as client:
        if args.action == "list":
            return {"models": [_model_row(m) for m in _list_models(client, args)]}
        if not args.name:
            raise InvalidArgument(f"`models {args.action}` needs a model name; see `studio-bridge models`")
        if args.action == "load":
            return {"model": _model_row(client.load_model(args.name, args.keep_alive))}
        return {"model": _model_row(client.unload_model(args.name))}


def _list_models(client, args) -> list[dict]:
    from .core.errors import Unavailable

    try:
        return client.models()
    except Unavailable:  # no daemon: what is installed, from the store itself
        return _offline_models(args)


def _model_row(model: dict) -> dict:
    return {**model, "resident": model.get("state") in ("resident", "loading")}


def _store_action(args) -> dict:
    """pull/import/remove act on the store on this machine (the daemon reads it per request)."""
    from .core import install
    from .core.store import ModelStore
    from .engines import Registry

    if not args.name:
        raise InvalidArgument(f"`models {args.action}` needs a {'path' if args.action == 'import' else 'model name'}")
    store = ModelStore(Path(args.state_dir).expanduser() / "models")
    registry = Registry()
    registry.bind_store(store)
    if args.action == "remove":
        _unload_quietly(args, args.name)
        return {"removed": _entry(store.remove(args.name))}
    if args.action == "import":
        entry = install.import_path(store, registry, args.name, args.as_name, args.engine)
    else:
        bar = DownloadBar(not args.json)
        try:
            entry = install.pull(store, registry, args.name, progress=bar)
        finally:
            bar.close()
    return {"model": _entry(entry)}


def _entry(entry) -> dict:
    from dataclasses import asdict

    return asdict(entry)


def _unload_quietly(args, name: str) -> None:
    from .core.errors import BridgeError

    try:
        with _client(args) as client:
            client.unload_model(name)
    except BridgeError:
        pass  # no daemon, or not loaded: nothing to unload


def _offline_models(args) -> list[dict]:
    """`models list` with no daemon: what the store holds, nothing resident."""
    from .core.service import model_rows
    from .core.store import ModelStore
    from .engines import Registry

    registry = Registry()
    registry.bind_store(ModelStore(Path(args.state_dir).expanduser() / "models"))
    return model_rows(registry, [])


class DownloadBar:
    """Per-file download progress on stderr (terminal only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._shown = False

    def __call__(self, filename: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        share = f"{done / total * 100:5.1f}%" if total else ""
        sys.stderr.write(f"\r{filename[:40]:40} {done / 1e6:8.1f} MB {share}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def master(args) -> dict:
    params = {k: v for k, v in (("preset", args.preset), ("lufs", args.lufs),
                                ("ceiling", args.ceiling), ("format", args.format)) if v is not None}
    if args.no_eq:
        params["eq"] = False
    if args.best_effort:
        params["best_effort"] = True
    inputs = {"audio": args.input}
    if args.reference:
        inputs["reference"] = args.reference
    return run_job(args, "master", inputs, params, args.out, no_cache=args.no_cache)


def separate(args) -> dict:
    params = {k: v for k, v in (("stems", args.stems), ("two_stems", args.two_stems),
                                ("segment", args.segment), ("overlap", args.overlap),
                                ("shifts", args.shifts), ("seed", args.seed),
                                ("segments_per_pass", args.segments_per_pass),
                                ("precision", args.precision), ("format", args.format))
              if v is not None}
    return run_job(args, "separate", {"audio": args.input}, params, args.out, model=args.model,
                   keep_alive=args.keep_alive, no_cache=args.no_cache)


def generate(args) -> dict:
    names = ("bpm", "bars", "beats_per_bar", "loop", "duration", "variations", "seed",
             "temperature", "top_k", "top_p", "cfg", "sample_rate", "format")
    params = {"prompt": args.prompt,
              **{k: getattr(args, k) for k in names if getattr(args, k) is not None}}
    inputs = {k: v for k, v in (("melody", args.melody), ("continue", args.continue_from)) if v}
    return run_job(args, "generate", inputs, params, args.out, model=args.model,
                   keep_alive=args.keep_alive, no_cache=args.no_cache)


def reframe(args) -> dict:
    names = ("aspect", "track", "start", "duration", "codec", "crf", "preset")
    params = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return run_job(args, "reframe", {"video": args.input}, params, args.out, no_cache=args.no_cache)


def otio(args) -> dict | int:
    """The OpenTimelineIO editor host (hosts/otio): reframe, separate or master a timeline's clips."""
    from hosts.otio.cli import run

    with _client(args) as client:
        return run(args, client)


def ardour_relay(args) -> int:
    """The Ardour host's relay (hosts/ardour/relay.py), in the foreground until Ctrl-C."""
    from hosts.ardour.relay import main

    return main(["--port", str(args.port), *(["--addr", args.addr] if args.addr else [])])


def demo(args) -> dict:
    from .demo import run_demo

    return run_demo(args.out, args.seconds, json_mode=args.json)


def doctor(args) -> dict:
    from .doctor import run_checks

    return run_checks(args.addr, args.token)


def service(args) -> dict | int:
    """Install, remove or inspect the per-user service (systemd user unit / launchd agent)."""
    import argparse
    import os

    from . import service_unit
    from .cli import _serve_args, config_from_args
    from .core.config import ENV_TOKEN

    if args.action == "install":
        # As serve: --token-file, else $STUDIO_BRIDGE_TOKEN (into the 0600 unit file, never
        # argv), else none: the daemon then makes and keeps its own.
        args.token = args.token or os.environ.get(ENV_TOKEN, "")
        config_from_args(args).check()  # refuse now what the daemon would refuse at every start
        blank = argparse.ArgumentParser()
        _serve_args(blank)
        argv = [*service_unit.daemon_executable(), "serve",
                *service_unit.serve_options(vars(args), vars(blank.parse_args([])))]
        result = service_unit.install(argv, grace=args.grace, token=args.token,
                                      state_dir=service_unit.option(argv, "--state-dir"))
        if result["manager"] == "available" and not result["next"]:
            result["daemon"] = service_unit.wait_serving(service_unit.daemon_addr(argv), args.token)
    elif args.action == "uninstall":
        result = service_unit.uninstall()
    else:
        result = service_unit.status(addr=args.addr, token=args.token)
    if args.json:
        return result
    print(service_unit.describe(result))
    return 0
