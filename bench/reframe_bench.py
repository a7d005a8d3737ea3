#!/usr/bin/env python3
"""Reframe speed end to end: `studio-bridge reframe` on a real daemon vs ffmpeg's own crop.

Clips (made once with tests/vision/clips.py, cached in --work): 1080p30 H.264 with AAC
audio, the astronaut moving over ffmpeg lavfi backgrounds that carry light temporal noise
(``noise=alls=6:allf=t``) and encoded like a camera (``-b:v 12M -maxrate 15M -bufsize 20M
-preset medium``); each clip's real bitrate is printed. Full run: "synthetic", 20 s, 3
shots; and "clean", the same shots without grain at -crf 20 (lighter to decode and encode).
``--quick``: a 6 s, 2-shot clip and one repetition.

For each clip it times, wall clock:

1. the real CLI against a real daemon (started as tests/conftest.py's ``running_daemon``):
   ``studio-bridge reframe CLIP --aspect 9:16 --out DIR --json`` (``--no-cache`` when the
   CLI has it): the first run after the daemon started (cold: lazy imports) and the best
   of N more; the job's keyframes output gives the crop path;
2. the encode floor: ffmpeg decoding, cropping along the same path and encoding with the
   engine's settings (libx264 -preset veryfast -crf 18, audio copied). The path reaches
   ffmpeg's ``crop`` filter as runtime commands from a ``sendcmd`` file, one line per
   frame; the crop position in sampled output frames is found again by template matching
   against the source, for both outputs;
3. ffmpeg with a fixed centred crop (same encoder), and decoding alone (``-f null``);
4. the engine's renderer alone (``bridge.vision.render.render_crop``, in this process) on the
   same path: the engine's time less this is analysis and job overhead.

Contenders run round-robin, so a load spike on a shared machine hits them alike.

Until the reframe engine is registered, step 1 is skipped (said so in the output) and
ffmpeg follows a synthetic sine path.

    .venv/bin/python bench/reframe_bench.py              # 20 s clip, best of 3; ~3 min (+70 s once: the clip)
    .venv/bin/python bench/reframe_bench.py --quick      # 6 s clip, 1 run; ~40 s (+20 s once)
    .venv/bin/python bench/reframe_bench.py --work DIR --repeat 5 --aspect 1:1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.vision.clips, tests.conftest

from tests.vision import clips as gen  # noqa: E402

FPS, SIZE = 30, (1920, 1080)
CAMERA = ["-b:v", "12M", "-maxrate", "15M", "-bufsize", "20M", "-preset", "medium"]
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]  # bridge/vision/render.py's Encoding
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]


def log(msg: str) -> None:
    print(f"[reframe_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- clips ----------------------------------------------------------------------------------
CLIPS = {
    "synthetic": [gen.Shot(240, gen.linear((100, 250), (1250, 330)), "testsrc2", face_size=560),
                  gen.Shot(180, gen.sinusoid((680, 240), (560, 60), 150), "mandelbrot", face_size=600),
                  gen.Shot(180, gen.step((150, 300), (1200, 200)), "gradients", face_size=520)],
    "synthetic-6s": [gen.Shot(100, gen.linear((100, 250), (1250, 330)), "testsrc2", face_size=560),
                     gen.Shot(80, gen.sinusoid((680, 240), (560, 60), 80), "gradients", face_size=600)],
}
CLIPS["clean"] = CLIPS["synthetic"]  # the same shots without grain: cheaper to decode and encode
# (background noise strength, encoder options): grainy camera-like footage, or clean pictures
ENCODINGS = {"synthetic": (6, CAMERA), "synthetic-6s": (6, CAMERA),
             "clean": (0, ["-crf", "20", "-preset", "medium"])}


@dataclass
class Clip:
    name: str
    path: Path
    seconds: float
    frames: int
    bitrate: float  # video stream, bit/s
    cuts: list[int] = field(default_factory=list)
    faces: np.ndarray | None = None  # ground truth (frames, 4): x, y, w, h


def make_clip(work: Path, name: str) -> Clip:
    """The clip ``name`` in ``work``, rendered unless an identical one is there."""
    path, sidecar = work / f"{name}.mp4", work / f"{name}.json"
    noise, encoder = ENCODINGS[name]
    spec = {"shots": [(s.frames, s.background, s.face_size) for s in CLIPS[name]],
            "size": SIZE, "fps": FPS, "encoder": encoder, "noise": noise, "version": 1}
    spec = json.loads(json.dumps(spec))  # tuples as JSON gives them back, to compare
    if not (path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == spec):
        log(f"rendering {name} ({sum(s.frames for s in CLIPS[name])} frames, 1080p) into {work}")
        t0 = time.perf_counter()
        partial = work / f"{name}.part.mp4"
        gen.make_clip(partial, CLIPS[name], size=SIZE, fps=FPS, crf=None, noise=noise, encoder_args=encoder)
        partial.replace(path)
        sidecar.write_text(json.dumps(spec))
        log(f"rendered in {time.perf_counter() - t0:.0f} s")
    truth = gen.ground_truth(CLIPS[name], SIZE, FPS)
    info = probe(path)
    return Clip(name, path, info["frames"] / FPS, info["frames"], info["bitrate"], truth.cuts,
                truth.faces)


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=bit_rate,nb_read_packets:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    return {"duration": float(info["format"]["duration"]), "bitrate": float(stream["bit_rate"]),
            "frames": int(stream["nb_read_packets"])}


# -- the engine through the CLI ---------------------------------------------------------------
def engine_missing() -> str:
    """Why the reframe engine cannot be benched ("" if it can)."""
    from bridge.engines import BUILTIN

    if "reframe" not in BUILTIN:
        return "the reframe engine is not registered in bridge/engines/__init__.py (BUILTIN)"
    done = subprocess.run(cli_cmd("reframe", "--help"), capture_output=True, text=True, cwd=ROOT)
    return "" if done.returncode == 0 else f"`studio-bridge reframe --help` fails: {done.stderr.strip()[-300:]}"


def cli_cmd(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("studio-bridge")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "bridge", *args]


def run_cli(daemon, clip: Clip, out: Path, aspect: str, no_cache: bool) -> tuple[float, dict]:
    """One timed `studio-bridge reframe ... --json`; (wall seconds, its JSON)."""
    cmd = cli_cmd("reframe", str(clip.path), "--aspect", aspect, "--out", str(out), "--json",
                  *(["--no-cache"] if no_cache else []))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "STUDIO_BRIDGE_ADDR": daemon.addr})
    wall = time.perf_counter() - t0
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {}
    if done.returncode or result.get("state") not in (None, "SUCCEEDED", "succeeded"):
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stdout[-800:]} "
                           f"{done.stderr[-800:]}\ndaemon log: {daemon.read_log()[-800:]}")
    return wall, result


def output_of(result: dict, kind: str) -> Path | None:
    paths = [Path(o["path"]) for o in result.get("outputs", []) if o.get("kind") == kind]
    return paths[0] if paths else None


def keyframes_of(result: dict) -> dict:
    path = output_of(result, "keyframes")
    if path is None:
        raise RuntimeError(f"no output of kind 'keyframes' in {result.get('outputs')}")
    return json.loads(path.read_text())


def engine_cold(daemon, clip: Clip, aspect: str, base: Path) -> dict:
    """The first job on a just-started daemon (pays the lazy imports); its plan and render."""
    help_text = subprocess.run(cli_cmd("reframe", "--help"), capture_output=True, text=True).stdout
    no_cache = "--no-cache" in help_text
    log(f"{clip.name}: engine cold run (daemon just started)")
    wall, result = run_cli(daemon, clip, base / f"{clip.name}-cold", aspect, no_cache)
    return {"cold": wall, "walls": [], "results": [], "keyframes": keyframes_of(result),
            "video": output_of(result, "video"), "no_cache_flag": no_cache}


# -- the crop path ----------------------------------------------------------------------------
@dataclass
class CropPath:
    """Top-left (x, y) and time of every frame, and the crop size."""

    times: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    width: int
    height: int
    source: str


def path_from_keyframes(doc: dict, frames: int) -> CropPath:
    """Every frame's crop from the engine's keyframes (interpolated if they are sparse)."""
    rows = sorted(doc["frames"], key=lambda f: f["frame"])
    index = np.array([f["frame"] for f in rows], float)
    every = np.arange(frames)
    crop = doc.get("crop") or {}
    width = int(crop.get("width") or rows[0]["w"])
    height = int(crop.get("height") or rows[0]["h"])
    times = np.interp(every, index, [f["time"] for f in rows])
    tail = every > index[-1]  # frames past the last keyframe: keep the frame rate
    times[tail] = rows[-1]["time"] + (every[tail] - index[-1]) / FPS
    return CropPath(times, np.interp(every, index, [f["x"] for f in rows]),
                    np.interp(every, index, [f["y"] for f in rows]), width, height,
                    f"the engine's keyframes ({len(rows)} for {frames} frames)")


def synthetic_path(frames: int, aspect: str) -> CropPath:
    """A sine pan across the frame, for when there is no engine to ask."""
    width, height = crop_size(aspect)
    every = np.arange(frames)
    xs = (SIZE[0] - width) / 2 * (1 + np.sin(2 * np.pi * every / (4 * FPS)))
    return CropPath(every / FPS, xs, np.full(frames, (SIZE[1] - height) / 2), width, height,
                    "a synthetic sine pan (4 s period, full width)")


def crop_size(aspect: str) -> tuple[int, int]:
    """The largest even crop of SIZE with this aspect ("9:16")."""
    a, b = (float(v) for v in aspect.split(":"))
    width, height = min(SIZE[0], SIZE[1] * a / b), min(SIZE[1], SIZE[0] * b / a)
    return int(width) & ~1, int(height) & ~1


def integer_positions(path: CropPath) -> np.ndarray:
    """(frames, 2) even, in-frame top-left corners: what both renderers crop at."""
    xs = np.clip(path.xs.astype(np.int64), 0, SIZE[0] - path.width) & ~1
    ys = np.clip(path.ys.astype(np.int64), 0, SIZE[1] - path.height) & ~1
    return np.stack([xs, ys], axis=1)


def write_sendcmd(path: CropPath, dst: Path) -> Path:
    """One ``sendcmd`` line per frame. Each command is timed half a frame before its frame:
    sendcmd fires once a frame's time reaches the command's, and a time printed rounded up
    (0.066667 for frame 2 at 30 fps) would otherwise land a frame late."""
    half = 0.5 / FPS
    lines = [f"{max(t - half, 0.0):.6f} crop x {x}, crop y {y};"
             for t, (x, y) in zip(path.times, integer_positions(path))]
    dst.write_text("\n".join(lines) + "\n")
    return dst


# -- ffmpeg -----------------------------------------------------------------------------------
def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode or done.stderr.strip():  # -v error: any message is a failure
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    return wall


def ffmpeg_moving(clip: Clip, path: CropPath, cmds: Path, out: Path) -> float:
    x0, y0 = integer_positions(path)[0]
    graph = f"sendcmd=f={cmds},crop=w={path.width}:h={path.height}:x={x0}:y={y0}"
    return timed([*FFMPEG, "-i", str(clip.path), "-filter_complex", graph, *ENCODE, "-c:a", "copy",
                  str(out)])


def ffmpeg_static(clip: Clip, path: CropPath, out: Path) -> float:
    x, y = (SIZE[0] - path.width) // 2 & ~1, (SIZE[1] - path.height) // 2 & ~1
    return timed([*FFMPEG, "-i", str(clip.path), "-vf", f"crop={path.width}:{path.height}:{x}:{y}",
                  *ENCODE, "-c:a", "copy", str(out)])


def renderer_alone(clip: Clip, path: CropPath, out: Path) -> float:
    """The engine's renderer (``render_crop``, PyAV) on the same path, in this process."""
    from bridge.vision.render import render_crop

    t0 = time.perf_counter()
    render_crop(clip.path, out, integer_positions(path), (path.width, path.height))
    return time.perf_counter() - t0


def ffmpeg_decode(clip: Clip) -> float:
    return timed([*FFMPEG, "-i", str(clip.path), "-f", "null", "-"])


# -- checking where a render cropped ------------------------------------------------------------
def lumas(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    import av

    found = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                found[index] = frame.to_ndarray(format="gray")
            if index >= max(wanted):
                break
    return found


def found_positions(source: Path, render: Path, samples: list[int], near: np.ndarray,
                    reach: int = 24) -> dict[int, tuple[int, int] | None]:
    """Where each sampled frame of ``render`` sits in ``source`` (best match within
    ``reach`` pixels of ``near[frame]``); None for a frame the render lacks."""
    import cv2

    src, out = lumas(source, set(samples)), lumas(render, set(samples))
    found = {}
    for i in samples:
        if i not in out:
            found[i] = None
            continue
        h, w = out[i].shape
        x0, y0 = max(int(near[i][0]) - reach, 0), max(int(near[i][1]) - reach, 0)
        window = src[i][y0:y0 + h + 2 * reach, x0:x0 + w + 2 * reach]
        score = cv2.matchTemplate(window, out[i], cv2.TM_SQDIFF)
        _, _, (dx, dy), _ = cv2.minMaxLoc(score)
        found[i] = (x0 + dx, y0 + dy)
    return found


def check(label: str, clip: Clip, render: Path, path: CropPath) -> str:
    """"k/n sampled frames at the planned crop" plus the misses."""
    planned = integer_positions(path)
    samples = sorted({*np.linspace(0, clip.frames - 1, 8).astype(int).tolist(),
                      *[c for cut in clip.cuts for c in (cut - 1, cut) if 0 <= c < clip.frames]})
    found = found_positions(clip.path, render, samples, planned)
    misses = [f"frame {i}: planned {tuple(planned[i])}, found {found[i]}"
              for i in samples if found[i] != tuple(planned[i])]
    return f"{label}: {len(samples) - len(misses)}/{len(samples)} sampled frames at the planned crop" + \
        (f" (misses: {'; '.join(misses)})" if misses else "")


def framing(clip: Clip, path: CropPath, doc: dict) -> str:
    """How the engine's plan meets the clip's ground truth: shots found and face kept."""
    corner = integer_positions(path)
    x, y, w, h = clip.faces[:len(corner)].T
    inside = (x >= corner[:, 0]) & (x + w <= corner[:, 0] + path.width) & \
        (y >= corner[:, 1]) & (y + h <= corner[:, 1] + path.height)
    centred = np.abs(x + w / 2 - corner[:, 0] - path.width / 2)
    starts = [s.get("start") for s in doc.get("shots", [])[1:]]
    return (f"engine plan vs ground truth: shot starts {starts} (true cuts {clip.cuts}); the whole "
            f"face inside the crop in {int(inside.sum())}/{len(inside)} frames; face centre to crop "
            f"centre, x: median {np.median(centred):.0f} px, max {centred.max():.0f} px")


# -- report -----------------------------------------------------------------------------------
def numbers(report, prefix: str = "") -> list[str]:
    """Every numeric field of the engine's report, flattened (``timings.decode: 1.2``)."""
    if isinstance(report, dict):
        return [line for k, v in sorted(report.items()) for line in numbers(v, f"{prefix}{k}.")]
    if isinstance(report, (int, float)) and not isinstance(report, bool):
        return [f"{prefix.rstrip('.')}: {report:g}"]
    return []


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.machine()


def versions() -> str:
    import av
    import cv2

    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()[2]
    return f"ffmpeg {ffmpeg}, PyAV {av.__version__} (FFmpeg {av.library_versions['libavcodec']}), " \
           f"OpenCV {cv2.__version__}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/reframe-bench"),
                        help="folder for the clips (kept and reused) and outputs")
    parser.add_argument("--repeat", type=int, default=None, help="runs per contender; the fastest counts")
    parser.add_argument("--quick", action="store_true", help="one 6 s clip, one run")
    parser.add_argument("--aspect", default="9:16")
    parser.add_argument("--skip-engine", action="store_true", help="ffmpeg only (synthetic path)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    args.work.mkdir(parents=True, exist_ok=True)
    runs = args.work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    load0, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M")
    if load0[0] > 0.5:
        log(f"load average {load0[0]:.2f}: the machine is busy, timings will be inflated")
    missing = "--skip-engine given" if args.skip_engine else engine_missing()
    clips = [make_clip(args.work, name) for name in (["synthetic-6s"] if args.quick else ["synthetic", "clean"])]

    rows, notes = [], []
    for clip in clips:
        row, clip_notes = bench_clip(clip, args.aspect, repeat, runs, missing)
        rows.append(row)
        notes += clip_notes
    print_results(args, repeat, rows, notes, missing, load0, started)


def bench_clip(clip: Clip, aspect: str, repeat: int, runs: Path, missing: str):
    """Every contender on one clip, round-robin (a load spike on a shared machine then hits
    all of them alike); the fastest of each counts. Returns (table row, notes)."""
    from tests.conftest import running_daemon

    with contextlib.ExitStack() as stack:
        daemon = None if missing else stack.enter_context(
            running_daemon(extra=["--media-root", str(clip.path.parent)]))
        engine = engine_cold(daemon, clip, aspect, runs) if daemon else None
        path = path_from_keyframes(engine["keyframes"], clip.frames) if engine else \
            synthetic_path(clip.frames, aspect)
        cmds = write_sendcmd(path, runs / f"{clip.name}.cmds.txt")
        moving, static = runs / f"{clip.name}-ffmpeg-moving.mp4", runs / f"{clip.name}-ffmpeg-static.mp4"
        walls = {"moving": [], "static": [], "decode": [], "renderer": []}
        for r in range(repeat):
            log(f"{clip.name}: round {r + 1}/{repeat}: {'engine, ' if engine else ''}"
                f"ffmpeg moving crop, static crop, decode only")
            if engine:
                wall, result = run_cli(daemon, clip, runs / f"{clip.name}-{r}", aspect,
                                       engine["no_cache_flag"])
                engine["walls"].append(wall)
                engine["results"].append(result)
            walls["moving"].append(ffmpeg_moving(clip, path, cmds, moving))
            walls["static"].append(ffmpeg_static(clip, path, static))
            walls["decode"].append(ffmpeg_decode(clip))
            walls["renderer"].append(renderer_alone(clip, path, runs / f"{clip.name}-render_crop.mp4"))
    log(f"{clip.name}: checking crop positions in the outputs")
    notes = [f"{clip.name}: crop {path.width}x{path.height}, path from {path.source}.",
             check("ffmpeg sendcmd render", clip, moving, path)]
    if engine:
        if engine["video"]:
            notes.append(check("engine render", clip, engine["video"], path))
        notes.append(framing(clip, path, engine["keyframes"]))
        same = all(keyframes_of(r)["frames"] == engine["keyframes"]["frames"] for r in engine["results"])
        notes.append(f"engine plans of the {1 + repeat} runs identical: {'yes' if same else 'NO'}")
        engine["wall"] = min(engine["walls"])
        engine["result"] = engine["results"][int(np.argmin(engine["walls"]))]
        engine["cached"] = any(r.get("cached") for r in engine["results"])
    return (clip, engine, *(min(walls[k]) for k in ("moving", "static", "decode", "renderer"))), notes


def print_results(args, repeat, rows, notes, missing, load0, started) -> None:
    cmd = "bench/reframe_bench.py" + (" --quick" if args.quick else "") + \
        (f" --repeat {args.repeat}" if args.repeat else "") + \
        ("" if args.aspect == "9:16" else f" --aspect {args.aspect}") + \
        (" --skip-engine" if args.skip_engine else "")
    print("## Reframe speed\n")
    print(f"{started}, machine {platform.node()}: {os.cpu_count()} cores "
          f"({len(os.sched_getaffinity(0))} usable), {cpu_model()}; "
          f"{versions()}; load average before {load0[0]:.2f} / after {os.getloadavg()[0]:.2f}. "
          f"Command: `{cmd}` (best of {repeat}). Seconds, realtime factor = clip length / wall.\n")
    print("| clip | length | video bitrate | engine cold (CLI wall) | engine warm best | "
          "ffmpeg moving crop | engine / ffmpeg | ffmpeg static crop | ffmpeg decode only | renderer alone |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for clip, engine, moving, static, decode, renderer in rows:
        rt = lambda wall: f"{wall:.2f} ({clip.seconds / wall:.2f}x)"  # noqa: E731
        eng = [rt(engine["cold"]), rt(engine["wall"]), f"{engine['wall'] / moving:.2f}"] if engine \
            else ["skipped", "skipped", "n/a"]
        print(f"| {clip.name} | {clip.seconds:.1f} s, {clip.frames} frames | "
              f"{clip.bitrate / 1e6:.1f} Mbit/s | {eng[0]} | {eng[1]} | {rt(moving)} | {eng[2]} | "
              f"{rt(static)} | {rt(decode)} | {rt(renderer)} |")
    print()
    if missing:
        print(f"Engine not run: {missing}.\n")
    for clip, engine, *_ in rows:
        if engine:
            print(f"{clip.name}: engine warm runs {', '.join(f'{w:.2f}' for w in engine['walls'])} s; "
                  f"{'results cache hit in a timed run! ' if engine['cached'] else ''}"
                  f"{'' if engine['no_cache_flag'] else 'the CLI has no --no-cache. '}"
                  f"report: {'; '.join(numbers(engine['result'].get('report'))) or 'no numbers'}\n")
    for note in notes:
        print(f"- {note}")
    print()


if __name__ == "__main__":
    main()
