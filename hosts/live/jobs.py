"""The daemon side of a trigger, run in a worker process.

The JACK callback runs Python and needs the GIL every period (5.3 ms at
256/48 kHz). Writing WAVs, gRPC and numpy in a thread of the same process
held it long enough to make the client miss cycles (measured here: up to 19
in a row right after a capture), so this work runs in a separate process and
only small results cross back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import schedule


def process_capture(audio: np.ndarray, rate: int, wav: str, request: dict, channels: int,
                    fade_ms: float, addr: str | None, token: str | None) -> dict:
    """Write the captured bars, run the job on the daemon, prepare the result to play.

    Args:
        audio: the captured bars, (frames, channels) float32.
        rate: sample rate.
        wav: where to write them (a folder under the daemon's media root).
        request: ``modes.Request`` fields (engine, inputs, params, model, stems).
        channels: the host's output channels.
        fade_ms: fade length at the result's ends.
        addr, token: the daemon (None: environment / default socket).

    Returns:
        {"ok": True, "played", "length", "job_id", "engine", "outputs"} or
        {"ok": False, "code", "message"}. Never raises: errors cross as data.
    """
    import soundfile

    from bridge.client import Client
    from bridge.client import BridgeError

    try:
        soundfile.write(wav, audio, rate, subtype="FLOAT")
        folder = str(Path(wav).parent)
        with Client(addr, token=token, timeout=30.0) as client:
            client.health(timeout=2.0)  # no daemon: say so now, never hang
            job = client.run(request["engine"], request["inputs"], request["params"], folder,
                             model=request["model"], client="live")
        if job["state"] != "succeeded":
            error = job.get("error") or {}
            return {"ok": False, "code": error.get("code", job["state"]), "job_id": job["job_id"],
                    "message": f"{request['engine']} job {job['job_id']} {job['state']}: "
                               f"{error.get('message', '')}".rstrip(": ")}
        stems = request["stems"]
        outputs = [out for out in job["outputs"] if not stems or out.get("kind") in stems]
        if not outputs:
            return {"ok": False, "code": "failed_precondition", "job_id": job["job_id"],
                    "message": f"job {job['job_id']} gave no audio to play (outputs: "
                               f"{[out.get('kind') for out in job['outputs']]})"}
        prepared = prepare_playback([out["path"] for out in outputs], rate, channels, fade_ms,
                                    str(Path(folder) / f"{Path(outputs[0]['path']).stem}.live.wav"))
        if not prepared["ok"]:
            return {**prepared, "job_id": job["job_id"]}
        return {**prepared, "job_id": job["job_id"], "engine": request["engine"],
                "outputs": [out["path"] for out in outputs]}
    except BridgeError as exc:
        return {"ok": False, "code": exc.code, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - crosses a process boundary as data
        return {"ok": False, "code": "internal", "message": f"{type(exc).__name__}: {exc}"}


def prepare_playback(paths: list[str], rate: int, channels: int, fade_ms: float, played: str) -> dict:
    """Mix audio files into one, faded at both ends, written to ``played`` for pyo to load.

    Returns:
        {"ok": True, "played", "length"} or {"ok": False, "code", "message"}. Never raises.
    """
    import soundfile

    mix = None
    try:
        for path in paths:
            data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
            if file_rate != rate:
                return {"ok": False, "code": "failed_precondition",
                        "message": f"{path} is at {file_rate} Hz but JACK runs at {rate} Hz; make it at "
                                   f"{rate} Hz (generate: --sample-rate {rate})"}
            mix = data if mix is None else mix[:len(data)] + data[:len(mix)]
    except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        return {"ok": False, "code": "invalid_argument",
                "message": f"cannot read {path} as audio ({exc}); send WAV, FLAC or AIFF files"}
    if mix is None or not len(mix):
        return {"ok": False, "code": "invalid_argument", "message": f"no audio to play in {paths}"}
    if mix.shape[1] < channels:
        mix = np.repeat(mix[:, :1], channels, axis=1)
    mix = schedule.fade(mix[:, :channels], rate, fade_ms)
    try:
        Path(played).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(played, mix, rate, subtype="FLOAT")
    except (OSError, RuntimeError) as exc:
        return {"ok": False, "code": "internal", "message": f"cannot write {played} ({exc})"}
    return {"ok": True, "played": played, "length": len(mix)}


def warm_up() -> bool:
    """Import what ``process_capture`` needs, so the first trigger does not wait for it."""
    import soundfile  # noqa: F401

    from bridge.client import Client  # noqa: F401

    return True
