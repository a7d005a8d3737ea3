ardour { ["type"] = "EditorHook", name = "Studio Bridge: Collect Results",
	license = "MIT", author = "Studio Bridge",
	description = [[Imports Studio Bridge results as they finish (checks about once a second)]] }

function signals ()
	return LuaSignal.Set ():add ({ [LuaSignal.LuaTimerS] = true })
end

function factory ()
@COMMON@
	-- LuaTimerS fires ten times a second before Ardour 8.2 and once a second after: the
	-- clock decides. A failed job is printed once here and shown by the next action.
	local last, told = 0, {}
	return function (signal, ref, ...)
		if os == nil or os.time () - last < 1 or SB.unusable () or not Session then return end
		last = os.time ()
		-- an error escaping a hook makes Ardour drop it: collecting would stop for the session
		local ok, imported, errors = pcall (SB.collect, false)
		if not ok then print ("Studio Bridge: collecting failed: " .. tostring (imported)) return end
		for _, e in ipairs (errors) do
			if not told[e] then told[e] = true; print ("Studio Bridge: " .. e) end
		end
	end
end
