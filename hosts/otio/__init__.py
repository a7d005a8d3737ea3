"""The OpenTimelineIO editor host: reframe, separate or master the clips of a timeline.

``studio-bridge otio reframe|separate|master IN -o OUT`` reads a timeline in any
format OpenTimelineIO reads (.otio, .otioz, FCP7 .xml, .fcpxml, .edl, .kdenlive),
sends each selected clip's media to the daemon, and writes OUT with the clips
pointing at the results, timing, names and markers kept, plus a lossless
``.otio`` sidecar with every job's details.

Modules: ``formats`` (what each file format holds and its quirks), ``timeline``
(reading/writing, clip selection, media resolution, range math), ``probe``
(what a media file is), ``session`` (one command's run: jobs, per-clip rows,
writing OUT), ``jobs`` (the three actions), ``cli`` (argparse).
Only ``cli`` is imported by ``studio-bridge --help``; OpenTimelineIO loads when
an ``otio`` command runs.
"""
