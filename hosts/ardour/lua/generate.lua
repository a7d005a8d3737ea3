ardour { ["type"] = "EditorAction", name = "Studio Bridge: Generate",
	license = "MIT", author = "Studio Bridge",
	description = [[Music for the range selection (else the loop range) on a new track]] }

function factory () return function ()
@COMMON@
	local why = SB.unusable ()
	if why then SB.say (why) return end
	SB.collect_and_say ()
	local start, length = SB.target_range ()
	if not start or length <= 0 then SB.say ("select a range or set the loop range first") return end
	local bpm, per_bar, note = SB.grid_at (start)
	local rv = LuaDialog.Dialog ("Studio Bridge: Generate", {
		{ type = "entry", key = "prompt", title = "Prompt", default = "" },
		{ type = "entry", key = "model", title = "Model (empty: the daemon's default)", default = "" },
		{ type = "checkbox", key = "lock", title = string.format ("Tempo-lock to %.2f BPM (%d/%d), whole bars",
			bpm * 4 / note, per_bar, note), default = true },
	}):run ()
	if not rv then return end
	local seconds = length / SB.rate ()
	local pairs = { { "model", rv["model"] }, { "prompt", rv["prompt"] }, { "sample_rate", SB.rate () } }
	local bars = math.floor (seconds * bpm / (60 * per_bar) + 0.5)
	if rv["lock"] and bars >= 1 then
		pairs[#pairs + 1] = { "bpm", bpm }; pairs[#pairs + 1] = { "bars", bars }
		pairs[#pairs + 1] = { "beats_per_bar", per_bar }
	else
		pairs[#pairs + 1] = { "duration", seconds }
	end
	SB.send (SB.token ("generate"), "generate", "", "range", start, 0, length, {}, pairs)
end end
