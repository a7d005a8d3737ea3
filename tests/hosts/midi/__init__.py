"""Tests of the MIDI controller host (hosts/midi)."""
