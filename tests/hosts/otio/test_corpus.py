"""Every timeline of the corpus (real editors' files; sources in corpus/SOURCES.md) through
every command: never a traceback, a status and reason for every clip, nothing left behind.

The sweep runs the real CLI in process against a real daemon, with the media the files
name absent (they point at editors' disks): every clip must say why it was not
processed. ``test_corpus_media.py`` runs a few of them again with media made to match.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bridge import cli

CORPUS = Path(__file__).with_name("corpus")
SUFFIXES = {".xml", ".fcpxml", ".edl", ".kdenlive", ".otio", ".otioz"}
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix.lower() in SUFFIXES)
STATUSES = {"done", "skipped", "failed"}


def otio_cli(daemon, *args) -> tuple[int, dict]:
    """`studio-bridge otio ... --json` in this process: an exception escaping it fails the test."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["otio", *map(str, args), "--json", "--addr", daemon.addr])
    return code, json.loads(out.getvalue())


def check_result(code: int, result: dict, source: Path) -> None:
    """One JSON object: an error that names the file, or a row with a reason per clip."""
    assert code in (0, 1), (code, result)
    if "clips" not in result:  # the timeline cannot be read, or OUT's format cannot hold the result
        error = result["error"]
        assert error["code"] in ("bad_timeline", "not_found", "invalid_argument", "unsupported_format"), result
        assert error["code"] == "unsupported_format" or source.name in error["message"], result
        assert "Traceback" not in result["error"]["message"]
        return
    for row in result["clips"]:
        assert row["status"] in STATUSES, row
        assert row["status"] == "done" or row.get("reason"), row
    assert (code == 0) == (result.get("processed", 0) > 0 and not result.get("error")), result


def test_the_corpus_holds_every_kind_of_file():
    assert {p.suffix.lower() for p in FILES} >= {".xml", ".fcpxml", ".edl", ".kdenlive", ".otio"}
    assert len(FILES) >= 30


@pytest.mark.parametrize("source", FILES, ids=[p.name for p in FILES])
def test_every_command_says_what_became_of_every_clip(served, tmp_path, source):
    folder = served.media / tmp_path.name
    folder.mkdir()
    for action in ("reframe", "separate", "master"):
        for out in (folder / f"{action}{source.suffix}", folder / f"{action}.otio"):
            code, result = otio_cli(served, action, source, "-o", out, "--model", "hpss") if action == "separate" \
                else otio_cli(served, action, source, "-o", out)
            check_result(code, result, source)
    assert list(folder.iterdir()) == []  # no media: nothing processed, nothing written


def _malformed(folder: Path) -> list[Path]:
    """Broken files of every format: empty, cut in half, XML without a sequence, only gaps."""
    made = []
    for suffix in (".xml", ".fcpxml", ".edl", ".kdenlive", ".otio"):
        made.append(folder / f"empty{suffix}")
        made[-1].write_bytes(b"")
    for name in ("premiere_example.xml", "29.97d.fcpxml", "avid_example.edl",
                 "kdenlive_example_v240770.kdenlive", "nested_example.otio"):
        data = (CORPUS / name).read_bytes()
        made.append(folder / f"half-{name}")
        made[-1].write_bytes(data[:len(data) // 2])
    made.append(folder / "no-sequence.xml")
    made[-1].write_text('<?xml version="1.0"?>\n<!DOCTYPE xmeml>\n<xmeml version="5"><project><name>x</name>'
                        "<children/></project></xmeml>\n")
    made.append(folder / "no-project.fcpxml")
    made[-1].write_text('<?xml version="1.0"?>\n<fcpxml version="1.10"><resources/></fcpxml>\n')
    made.append(folder / "binary.edl")
    made[-1].write_bytes(bytes(range(256)) * 4)
    import opentimelineio as otio

    gaps = otio.schema.Timeline(name="only gaps")
    gap = otio.schema.Gap(duration=otio.opentime.RationalTime(48, 24))
    gaps.tracks.append(otio.schema.Track(name="V1", children=[gap]))
    made.append(folder / "only-gaps.otio")
    otio.adapters.write_to_file(gaps, str(made[-1]))
    return made


def test_malformed_timelines_are_clear_errors(served, tmp_path):
    folder = served.media / tmp_path.name
    (folder / "in").mkdir(parents=True)
    for source in _malformed(folder / "in"):
        for action in ("reframe", "master"):
            code, result = otio_cli(served, action, source, "-o", folder / f"{action}.otio")
            assert code == 1, (source.name, result)
            check_result(code, result, source)
            assert result["error"]["message"], result
    assert sorted(p.name for p in folder.iterdir()) == ["in"]  # nothing written
