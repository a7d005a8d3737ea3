"""What each action script in ``scripts/`` calls: ``run("separate", globals())``."""

from __future__ import annotations

import traceback

from . import actions
from .api import Reaper

ACTIONS = {
    "separate": actions.separate,
    "generate": actions.generate,
    "continue": actions.continue_item,
    "master": actions.master,
}


def run(name: str, script_globals: dict, api: Reaper | None = None):
    """Start action ``name`` with REAPER's API from the script's globals.

    Returns the action's runner (None when it stopped before starting jobs). An
    unexpected error is shown in a dialog with its traceback on the console, never
    left to vanish in REAPER's script host.
    """
    api = api or Reaper.from_script(script_globals)
    try:
        return ACTIONS[name](api)
    except Exception as exc:  # noqa: BLE001 - the edge of the adapter: say it, do not crash REAPER's script host
        api.console(traceback.format_exc())
        api.message(f"Studio Bridge {name} stopped on an error: {exc}\n(Details on the ReaScript console.)")
        return None
