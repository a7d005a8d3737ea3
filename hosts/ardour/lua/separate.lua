ardour { ["type"] = "EditorAction", name = "Studio Bridge: Separate",
	license = "MIT", author = "Studio Bridge",
	description = [[Stems of the selected regions on new tracks at the regions' places (via the Studio Bridge relay)]] }

function factory () return function ()
@COMMON@
	local why = SB.unusable ()
	if why then SB.say (why) return end
	SB.collect_and_say ()
	local regions = SB.selected_regions ()
	if #regions == 0 then SB.say ("select one or more audio regions first") return end
	local rv = LuaDialog.Dialog ("Studio Bridge: Separate", {
		{ type = "entry", key = "model", title = "Model (empty: the daemon's default; hpss needs no weights)", default = "" },
		{ type = "entry", key = "two", title = "Two stems (e.g. vocals; empty: all stems)", default = "" },
	}):run ()
	if not rv then return end
	for _, r in ipairs (regions) do
		local pairs = { { "model", rv["model"] } }
		if rv["two"] ~= "" then pairs[#pairs + 1] = { "two_stems", rv["two"] } end
		local token, err = SB.send_region (r, "separate", "audio", r:position ():samples (), pairs)
		if not token then SB.say (err) end
	end
	print ("Studio Bridge: sent " .. #regions .. " region(s); stems arrive on new tracks when ready")
end end
