ardour { ["type"] = "EditorAction", name = "Studio Bridge: Continue",
	license = "MIT", author = "Studio Bridge",
	description = [[What follows the selected region, generated onto a new track right after it]] }

function factory () return function ()
@COMMON@
	local why = SB.unusable ()
	if why then SB.say (why) return end
	SB.collect_and_say ()
	local regions = SB.selected_regions ()
	if #regions == 0 then SB.say ("select the audio region to continue first") return end
	local rv = LuaDialog.Dialog ("Studio Bridge: Continue", {
		{ type = "entry", key = "prompt", title = "Prompt", default = "" },
		{ type = "entry", key = "model", title = "Model (empty: the daemon's default)", default = "" },
		{ type = "number", key = "seconds", title = "Seconds", min = 1, max = 120, step = 1, digits = 0, default = 8 },
	}):run ()
	if not rv then return end
	for _, r in ipairs (regions) do
		local place = (r:position () + r:length ()):samples ()
		local token, err = SB.send_region (r, "generate", "continue", place, {
			{ "model", rv["model"] }, { "prompt", rv["prompt"] }, { "duration", rv["seconds"] },
			{ "sample_rate", SB.rate () } })
		if not token then SB.say (err) end
	end
end end
