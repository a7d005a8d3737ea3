"""The live host: a JACK client (pyo) that captures bars from a DAW's send and plays results back on the bar.

`studio-bridge live` follows the DAW's MIDI clock, keeps the last N bars of its
send, and on a trigger sends them to the daemon (separate, continue, melody);
the result plays from the next bar line, sample-accurately. See ``host.py``.
"""
