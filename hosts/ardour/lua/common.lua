	-- Studio Bridge for Ardour: the code every script shares (hosts/ardour/lua/common.lua).
	-- Jobs go to the relay (hosts/ardour/relay.py) over OSC; Lua cannot receive
	-- OSC, so the relay leaves each result in <session>/studio-bridge/results/
	-- and lists it in done.list, and collect() imports what is new.
	local SB = {}
	SB.relay = "osc.udp://127.0.0.1:@PORT@"
	SB.audio = { wav = true, flac = true, aif = true, aiff = true, ogg = true, mp3 = true }

	function SB.dir ()
		local path = Session:path ()  -- Ardour 7.3 gives no trailing slash
		if path:sub (-1) ~= "/" then path = path .. "/" end
		return path .. "studio-bridge"
	end
	function SB.results () return SB.dir () .. "/results" end
	function SB.rate () return Session:nominal_sample_rate () end

	-- Nil when scripts may read files; else why they may not.
	function SB.unusable ()
		if io == nil or os == nil then
			return "Studio Bridge needs Lua's io and os: turn off the preference 'Sandbox all Lua scripts'"
		end
	end

	SB.count = 0
	function SB.token (engine)
		SB.count = SB.count + 1
		return string.format ("%s-%d-%d-%d", engine, os.time (), math.random (0, 999999), SB.count)
	end

	-- One path per channel of an audio region; nil for MIDI or non-file sources.
	function SB.region_sources (r)
		local ar = r:to_audioregion ()
		if ar:isnil () then return nil end
		local paths = {}
		for c = 0, ar:n_channels () - 1 do
			local fs = ar:source (c):to_filesource ()
			if fs:isnil () then return nil end
			paths[#paths + 1] = fs:path ()
		end
		return paths
	end

	-- Send one job to the relay. pairs: { {name, value}, ... } (numbers, strings, booleans).
	function SB.send (token, engine, input, name, place, start, length, paths, pairs)
		local types = "ssssssdddd"
		local args = { token, engine, input, name, SB.dir (), SB.results (), place, start, length, #paths }
		for _, p in ipairs (paths) do
			types = types .. "s"; args[#args + 1] = p
		end
		for _, kv in ipairs (pairs) do
			local value = kv[2]
			if type (value) == "boolean" then value = value and 1 or 0 end
			types = types .. "s" .. (type (value) == "number" and "d" or "s")
			args[#args + 1] = kv[1]; args[#args + 1] = value
		end
		ARDOUR.LuaOSC.Address (SB.relay):send ("/studio_bridge/job", types, table.unpack (args))
		return token
	end

	-- A region's audio as the engine's input; the result goes to `place` (samples).
	function SB.send_region (r, engine, input, place, pairs)
		local paths = SB.region_sources (r)
		if not paths then return nil, r:name () .. " is not an audio region on files" end
		return SB.send (SB.token (engine), engine, input, r:name (), place,
			r:start ():samples (), r:length ():samples (), paths, pairs)
	end

	function SB.selected_regions ()
		local list = {}
		for r in Editor:get_selection ().regions:regionlist ():iter () do list[#list + 1] = r end
		return list
	end

	-- The range selection, else the loop range: start, length in samples (nil if neither).
	function SB.target_range ()
		local sel = Editor:get_selection ()
		if sel.time:start_sample () < sel.time:end_sample () then
			return sel.time:start_sample (), sel.time:end_sample () - sel.time:start_sample ()
		end
		-- No loop range: a nil (or null) Location, whose methods then fail.
		local ok, start, length = pcall (function ()
			local loop = Session:locations ():auto_loop_location ()
			return loop:start ():samples (), loop:length ():samples ()
		end)
		if ok then return start, length end
	end

	function SB.lines (path)
		local out = {}
		local f = io.open (path, "r")
		if not f then return out end
		for line in f:lines () do
			if line ~= "" then out[#out + 1] = line end
		end
		f:close ()
		return out
	end

	function SB.read_result (token)
		local res = { outputs = {} }
		for _, line in ipairs (SB.lines (SB.results () .. "/" .. token .. ".result")) do
			local key, value = line:match ("^([^\t]*)\t(.*)$")
			if key == "output" then res.outputs[#res.outputs + 1] = value
			elseif key then res[key] = value end
		end
		return res
	end

	function SB.is_done (token)
		local f = io.open (SB.results () .. "/" .. token .. ".result", "r")
		if f then f:close () return true end
		return false
	end

	-- New tracks with these files at `place`; the originals are not touched.
	function SB.import (paths, place)
		local files = C.StringVector ()
		for _, p in ipairs (paths) do files:push_back (p) end
		local function import (...)
			Editor:do_import (files,
				Editing.ImportDistinctFiles, Editing.ImportAsTrack, ARDOUR.SrcQuality.SrcBest,
				ARDOUR.MidiTrackNameSource.SMFTrackName, ARDOUR.MidiTempoMapDisposition.SMFTempoIgnore,
				Temporal.timepos_t (place), ARDOUR.PluginInfo (), ARDOUR.Track (), ...)
		end
		-- Ardour 7 takes 10 arguments (the last: with_markers = false); should a later
		-- version want one more, a call short of it fails before importing anything.
		if not pcall (import, false) then import (false, false) end
	end

	-- Import every finished result not imported yet. Returns (imported, {errors}).
	-- A token is listed in imported.list before its import (Editor:do_import runs the GUI's
	-- loop, where the hook's timer can fire again). A failed job is listed only with
	-- mark_failed (the actions, which show it); the hook leaves it for them to show.
	function SB.collect (mark_failed)
		local done = SB.lines (SB.results () .. "/done.list")
		if #done == 0 then return 0, {} end
		local seen = {}
		for _, t in ipairs (SB.lines (SB.results () .. "/imported.list")) do seen[t] = true end
		local imported, errors = 0, {}
		for _, token in ipairs (done) do
			if not seen[token] then
				seen[token] = true
				local res = SB.read_result (token)
				local audio = {}
				for _, p in ipairs (res.outputs) do
					local ext = (p:match ("%.([%w]+)$") or ""):lower ()
					if SB.audio[ext] then audio[#audio + 1] = p end
				end
				local ok = res.state == "succeeded" and #audio > 0
				if ok or mark_failed then
					local f = io.open (SB.results () .. "/imported.list", "a")
					if f then f:write (token .. "\n"); f:close () end
				end
				if ok then
					SB.import (audio, tonumber (res.place) or 0)
					imported = imported + 1
				else
					errors[#errors + 1] = (res.name or token) .. ": " .. (res.error or res.state or "no result")
				end
			end
		end
		return imported, errors
	end

	-- What an action does first: import what is ready, and show the jobs that failed.
	function SB.collect_and_say ()
		local _, errors = SB.collect (true)
		if #errors > 0 then SB.say ("these jobs failed:\n" .. table.concat (errors, "\n")) end
	end

	-- A job's meter at `pos` (samples): (beats per minute of its note value, beats per bar).
	-- 6/8 at 90 quarter notes a minute is 180 eighths a minute, 6 to the bar.
	function SB.grid_at (pos)
		local qpm, divisions, note = 120, 4, 4
		pcall (function ()
			local map, at = Temporal.TempoMap.read (), Temporal.timepos_t (pos)
			qpm = map:tempo_at (at):quarter_notes_per_minute ()
			local meter = map:meter_at (at)
			divisions, note = meter:divisions_per_bar (), meter:note_value ()
		end)
		return qpm * note / 4, divisions, note
	end

	function SB.say (text)
		print ("Studio Bridge: " .. text)
		if Editor and LuaDialog then LuaDialog.Message ("Studio Bridge", text, LuaDialog.MessageType.Info, LuaDialog.ButtonType.Close):run () end
	end
