"""The REAPER host: ReaScript (Python) actions that send items to the daemon.

``scripts/`` holds the actions REAPER loads; each imports :mod:`hosts.reaper.entry`.
Everything that decides what to do is plain Python (``actions``, ``jobs``) and
talks to REAPER only through :class:`hosts.reaper.api.Reaper`, a small wrapper
over the ``RPR_*`` functions whose calling convention is recorded in
:mod:`hosts.reaper.api_table`. This side imports only the standard library (it
runs in whatever Python REAPER embeds); the job itself runs in a separate
process, :mod:`hosts.reaper.worker`, which uses ``bridge.client``.
"""
