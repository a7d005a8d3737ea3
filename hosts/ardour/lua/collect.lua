ardour { ["type"] = "EditorHook", name = "Studio Bridge: Collect Results",
	license = "MIT", author = "Studio Bridge",
	description = [[Imports Studio Bridge results as they finish (checks once a second)]] }

function signals ()
	return LuaSignal.Set ():add ({ [LuaSignal.LuaTimerS] = true })
end

function factory ()
@COMMON@
	local ticks = 0
	return function (signal, ref, ...)
		ticks = ticks + 1
		if ticks % 10 ~= 0 or SB.unusable () or not Session then return end
		local imported, errors = SB.collect ()
		for _, e in ipairs (errors) do print ("Studio Bridge: " .. e) end
	end
end
