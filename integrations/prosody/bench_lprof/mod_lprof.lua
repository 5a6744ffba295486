-- mod_lprof: a sampling profiler of Prosody's Lua code for bench.sh (BENCH_LPROF=1), not for
-- production. Every 1000 Lua VM instructions (of the main thread and of every coroutine created
-- after it starts, which util.async copies the hook into) it counts the current line and every
-- function on the stack; every 3 s it writes the totals to $LPROF_OUT. The total is the number of
-- thousands of VM instructions run: unlike CPU time, it does not move with the machine's load.
local getinfo = debug.getinfo;
local counts, fcounts, total = {}, {}, 0;
local function hook()
	total = total + 1;
	local info = getinfo(2, "Sl");
	if info then
		local k = info.short_src..":"..(info.currentline or 0);
		counts[k] = (counts[k] or 0) + 1;
	end
	local seen = {};
	for level = 2, 30 do
		local i = getinfo(level, "Sn");
		if not i then break; end
		local k = i.short_src..":"..i.linedefined.." "..tostring(i.name);
		if not seen[k] then
			seen[k] = true;
			fcounts[k] = (fcounts[k] or 0) + 1;
		end
	end
end
-- Timers run on the main thread (module code runs in the startup coroutine).
module:add_timer(0, function () debug.sethook(hook, "", 1000); end);

local function top(t, n)
	local a = {};
	for k, v in pairs(t) do a[#a + 1] = { k, v }; end
	table.sort(a, function (x, y) return x[2] > y[2]; end);
	local out = {};
	for i = 1, math.min(n, #a) do
		out[#out + 1] = string.format("%6d %5.1f%% %s", a[i][2], 100 * a[i][2] / total, a[i][1]);
	end
	return table.concat(out, "\n");
end
local path = os.getenv("LPROF_OUT");
module:add_timer(3, function ()
	if not path then return; end
	local f = io.open(path, "w");
	if not f then return; end
	f:write("total ", total, " (thousands of Lua VM instructions)\n== lines\n", top(counts, 60),
		"\n== functions, inclusive\n", top(fcounts, 80), "\n");
	f:close();
	return 3;
end);
