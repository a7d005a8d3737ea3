# Studio Bridge - Master selected item (ReaScript, Python)
# Load it with Actions > Show action list > New action > Load ReaScript.
# It needs "Enable Python for use with ReaScript" in Preferences > Plug-ins > ReaScript
# and a running daemon (`studio-bridge serve`). See hosts/reaper/CHECKLIST.md.
import os
import sys

STUDIO_BRIDGE_ROOT = ""  # the checkout; filled in when this file is copied elsewhere

try:
    _root = STUDIO_BRIDGE_ROOT or os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
except NameError:  # no __file__: REAPER ran the code without a path
    _root = STUDIO_BRIDGE_ROOT
if _root and _root not in sys.path:
    sys.path.insert(0, _root)

from hosts.reaper.entry import run

run("master", globals())
