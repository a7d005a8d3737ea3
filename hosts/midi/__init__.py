"""The MIDI controller host: pads, knobs and MIDI clock drive the daemon; pads light back.

``studio-bridge midi --map pads.toml --in PORT`` reads a controller (mido
messages over python-rtmidi: ALSA, JACK, CoreMIDI or WinMM), turns the
controls bound in the TOML map into daemon jobs through ``bridge.client``
(generate at the tempo of incoming MIDI clock, regenerate, cancel, separate,
master, set a parameter), and lights the pads on the output port.

Modules: ``clock`` (tempo and position from MIDI clock; also used by the live
host), ``mapping`` (the TOML map), ``ports`` (rtmidi APIs, port names,
reconnecting), ``leds`` (palettes and blinking), ``controller`` (controls to
jobs, off the MIDI loop), ``host`` (one run: play or learn), ``cli`` (argparse).
Only ``cli`` is imported by ``studio-bridge --help``.
"""
