ardour { ["type"] = "EditorAction", name = "Studio Bridge: Master",
	license = "MIT", author = "Studio Bridge",
	description = [[Mastered copies of the selected regions on new tracks at the regions' places]] }

function factory () return function ()
@COMMON@
	local why = SB.unusable ()
	if why then SB.say (why) return end
	SB.collect_and_say ()
	local regions = SB.selected_regions ()
	if #regions == 0 then SB.say ("select one or more audio regions first") return end
	local rv = LuaDialog.Dialog ("Studio Bridge: Master", {
		{ type = "dropdown", key = "preset", title = "Target", values = {
			["Streaming (-14 LUFS, -1 dBTP)"] = "streaming", ["Apple (-16 LUFS, -1 dBTP)"] = "apple",
			["EBU R128 (-23 LUFS, -1 dBTP)"] = "ebu-r128", ["ATSC A/85 (-24 LUFS, -2 dBTP)"] = "atsc-a85" },
			default = "Streaming (-14 LUFS, -1 dBTP)" },
	}):run ()
	if not rv then return end
	for _, r in ipairs (regions) do
		local token, err = SB.send_region (r, "master", "audio", r:position ():samples (), { { "preset", rv["preset"] } })
		if not token then SB.say (err) end
	end
end end
