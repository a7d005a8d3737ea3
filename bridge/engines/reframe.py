"""Engine `reframe`: a video cut to another shape around its subject.

16:9 to 9:16, 1:1, 4:5, 4:3 or any size. The work is one decode pass
(bridge/vision/pipeline.py): shot cuts (PySceneDetect), subjects (Haar faces,
then saliency, then motion) on small frames at a reduced rate with tracking
between detections, a camera-like crop path per shot (bridge/dsp/camera.py),
the crop rendered on the YUV planes with the audio copied. Outputs: the video
(kind ``video``) and the crop of every frame as data (kind ``keyframes``), so
an editor can redo or adjust the move.

The encoder follows the source's family: ProRes stays ProRes (.mov), HEVC
stays HEVC, everything else becomes H.264; the container keeps the source's
where it can hold the codec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..core.engine import Engine, EngineKind, InputSpec, Output, Param, RunContext, RunResult
from ..core.errors import MediaError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")
KEYFRAMES_VERSION = 1


class ReframeEngine(Engine):
    name = "reframe"
    kind = EngineKind.DSP
    version = "1"
    description = ("cut a video to another aspect ratio around its subject (faces, else what stands "
                   "out, else what moves), with shot-aware camera-like moves; writes the video and "
                   "per-frame crop keyframes")
    inputs = (InputSpec("video", kind="video", description="the clip to reframe (any codec ffmpeg reads)"),)
    common_params = ()  # no audio is written: the audio format choice does not apply
    params = (
        Param("aspect", "string", "9:16", "target shape: 9:16, 1:1, 4:5, 4:3, 16:9, ... or a size "
              "WxH (e.g. 1080x1920: the crop is scaled to it)"),
        Param("track", "choice", "auto", "what the crop follows: auto (faces, else saliency, else "
              "motion), faces, saliency, or center (a fixed centre crop)",
              choices=("auto", "faces", "saliency", "center")),
        Param("start", "float", 0.0, "render from this point of the source", minimum=0.0, unit="s"),
        Param("duration", "float", 0.0, "render this much (0 = to the end)", minimum=0.0, unit="s"),
        Param("codec", "choice", "auto", "encoder: auto (the source's family: ProRes, HEVC, else "
              "H.264), h264, hevc or prores", choices=("auto", "h264", "hevc", "prores")),
        Param("crf", "int", 18, "H.264/HEVC constant quality (0 = lossless, 18 = visually lossless)",
              minimum=0, maximum=51),
        Param("preset", "choice", "veryfast", "H.264/HEVC speed/size trade-off", choices=X264_PRESETS),
    )

    def _validate(self, values: dict) -> dict:
        from ..vision.pipeline import parse_aspect

        parse_aspect(values["aspect"])  # the frame's size is known per file: checked when it runs
        return values

    def _run(self, handle, inputs, params, ctx: RunContext) -> RunResult:
        from ..vision.pipeline import reframe

        media = inputs["video"]
        family, container = _probe(media.path)
        encoding, suffix = _encoding(params, family, media.path.suffix.lower())
        dst = ctx.scratch.file(suffix)
        ctx.progress(0.0, "reframing")
        result = reframe(media.path, dst, params["aspect"], params["track"], params["start"],
                         params["duration"], encoding,
                         progress=lambda f: ctx.progress(f * 0.99, "reframing"), check=ctx.check)
        keyframes = _keyframes(result, params)
        report = _report(result, params, encoding, family)
        return RunResult(
            outputs=[Output("video", path=dst, suffix=suffix),
                     Output("keyframes", data=json.dumps(keyframes, indent=1).encode(), suffix=".json")],
            report=report, name=f"{media.name}.{_slug(params['aspect'])}")


def _probe(path: Path) -> tuple[str, str]:
    """The source's video codec and container names (cheap: headers only)."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            return (streams[0].codec_context.name if streams else "", container.format.name)
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"video cannot be opened: {reason} (not a video ffmpeg can read, "
                         "or damaged)") from None


def _encoding(params: dict, family: str, suffix: str):
    """Encoder settings and output suffix for the asked (or the source's) codec family."""
    from ..vision.render import Encoding

    choice = params["codec"]
    if choice == "auto":
        choice = {"prores": "prores", "hevc": "hevc"}.get(family, "h264")
    if choice == "prores":
        return Encoding(codec="prores_ks", pix_fmt="yuv422p10le", profile=3), ".mov"
    codec = "libx265" if choice == "hevc" else "libx264"
    keep = suffix if suffix in (".mp4", ".mov", ".mkv", ".m4v") else ".mp4"
    return Encoding(codec=codec, crf=params["crf"], preset=params["preset"]), keep


def _keyframes(result, params: dict) -> dict:
    return {
        "version": KEYFRAMES_VERSION,
        "aspect": params["aspect"],
        "track": params["track"],
        "source": {**result.source, "fps": result.fps, "frames": len(result.frames),
                   "start": result.start, "timecode": result.timecode},
        "crop": {"width": result.target.crop[0], "height": result.target.crop[1]},
        "output": {"width": result.target.size[0], "height": result.target.size[1]},
        "shots": [shot.as_dict() for shot in result.shots],
        "frames": result.frames,
    }


def _report(result, params: dict, encoding, family: str) -> dict:
    modes = [shot.mode for shot in result.shots]
    return {
        "frames": len(result.frames), "fps": round(result.fps, 6),
        "source": result.source, "start": result.start,
        "duration": round(len(result.frames) / result.fps, 6) if result.fps else 0.0,
        "crop": {"width": result.target.crop[0], "height": result.target.crop[1]},
        "output": {"width": result.target.size[0], "height": result.target.size[1]},
        "shots": len(result.shots), "cuts": result.cuts,
        "hold": modes.count("hold"), "pan": modes.count("pan"),
        "subjects": sorted({shot.subject for shot in result.shots}),
        "subject_lost": [shot.start for shot in result.shots if not shot.fits],
        "encoder": encoding.codec, "source_codec": family, "audio": result.audio,
        "timecode": result.timecode, "warnings": result.warnings,
    }


def _slug(aspect: str) -> str:
    return re.sub(r"[^0-9a-z]+", "x", aspect.strip().lower())

