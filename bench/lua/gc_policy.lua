-- gc_policy.lua - the collector's setting of bench/lua/run.sh's Lua servers,
-- the same for every one of them: GC (environment) is "default" (the
-- interpreter's own: lua5.4 starts generational), "incremental[:PAUSE[:STEPMUL]]"
-- or "generational" (5.4). Returns the setting as ek.run's `gc` option (nil
-- for default) and a function that applies it with collectgarbage (for luv).
local spec = os.getenv("GC") or "default"
if spec == "default" or spec == "" then return nil, function() end end
local mode, pause, stepmul = spec:match("^(%a+):?(%d*):?(%d*)$")
assert(mode == "incremental" or mode == "generational", "GC: bad setting " .. spec)
local opt = { mode = mode, pause = tonumber(pause), stepmul = tonumber(stepmul) }
local function apply()
  if mode == "generational" then
    collectgarbage("generational")
    return
  end
  if not jit then collectgarbage("incremental") end
  if opt.pause then collectgarbage("setpause", opt.pause) end
  if opt.stepmul then collectgarbage("setstepmul", opt.stepmul) end
end
return opt, apply
