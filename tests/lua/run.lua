-- run.lua - the Lua binding's test runner (the project's own: Debian's busted is
-- packaged for Lua 5.1 modules, and a small runner also works on LuaJIT).
--
--   lua5.4 tests/lua/run.lua [-v] [FILTER...]      (LUA_CPATH must find ekiden.so)
--   luajit tests/lua/run.lua ...   or   ekiden-lua tests/lua/run.lua ...
--
-- Loads every tests/lua/test_*.lua (or those whose name contains a FILTER). A
-- file registers tests with test(name, fn [, opts]); each fn runs as the main task
-- of its own ek.run (fresh runtime, opts.workers default 2) under a 60 s
-- ek.timeout, unless opts.outside is set (then it runs as plain Lua). Prints one
-- line per test and "N passed, N failed, N skipped"; exits 1 if any failed.
-- Environment: EKL_SCALE (default 1) scales stress counts down (sanitizers).
local here = (arg and arg[0] or "run.lua"):match("^(.*)/[^/]*$") or "."
io.stdout:setvbuf("line")
local ek = require "ekiden"

local verbose, filters = false, {}
for _, a in ipairs(arg or {}) do
  if a == "-v" then verbose = true else filters[#filters + 1] = a end
end

local tests = {}
local current_file
local env = setmetatable({}, { __index = _G })
function env.test(name, fn, opts)
  tests[#tests + 1] = { file = current_file, name = name, fn = fn, opts = opts or {} }
end
env.SCALE = tonumber(os.getenv("EKL_SCALE") or "1") or 1
env.HERE = here
env.ek = ek
env.LUAJIT = (jit ~= nil)

-- Assertions that say what differed.
local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end
function env.eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %s, want %s", what or "value", fmt(got), fmt(want)), 2)
  end
end
function env.ok(v, what)
  if not v then error((what or "expected a true value") .. ", got " .. fmt(v), 2) end
  return v
end
function env.matches(s, pat, what)
  if type(s) ~= "string" or not s:find(pat) then
    error(string.format("%s: %s does not match %q", what or "value", fmt(s), pat), 2)
  end
end
-- raises(fn, pattern): fn must raise an error whose message matches pattern.
function env.raises(fn, pat, ...)
  local okc, err = pcall(fn, ...)
  if okc then error("expected an error matching " .. fmt(pat), 2) end
  if pat and not tostring(err):find(pat) then
    error(string.format("error %s does not match %q", fmt(tostring(err)), pat), 2)
  end
  return err
end
-- fails(name, a, b, c): an operation's luv-style failure nil, "NAME: msg", "NAME".
function env.fails(name, a, b, c)
  if a ~= nil or c ~= name or type(b) ~= "string" or b:sub(1, #name + 1) ~= name .. ":" then
    error(string.format("expected failure %s, got %s, %s, %s", name, fmt(a), fmt(b), fmt(c)), 2)
  end
end

local files = {}
local p = io.popen('ls "' .. here .. '"')
for f in p:lines() do
  if f:match("^test_.*%.lua$") then files[#files + 1] = f end
end
p:close()
table.sort(files)

for _, f in ipairs(files) do
  current_file = f
  local chunk, err = loadfile(here .. "/" .. f, "t", env)
  if not chunk then
    tests[#tests + 1] = { file = f, name = "(load)", fn = function() error(err) end, opts = { outside = true } }
  else
    if setfenv then setfenv(chunk, env) end
    local okc, e = pcall(chunk)
    if not okc then
      tests[#tests + 1] = { file = f, name = "(load)", fn = function() error(e) end, opts = { outside = true } }
    end
  end
end

local function selected(t)
  if #filters == 0 then return true end
  for _, f in ipairs(filters) do
    if (t.file .. ":" .. t.name):find(f, 1, true) then return true end
  end
  return false
end

local passed, failed, skipped = 0, 0, 0
local failures = {}
local t_all = os.clock()
for _, t in ipairs(tests) do
  if selected(t) then
    local label = t.file:gsub("%.lua$", "") .. ": " .. t.name
    local t0 = ek.now()
    local okc, err
    if t.opts.skip then
      okc, err = "skip", t.opts.skip
    elseif t.opts.outside then
      okc, err = xpcall(t.fn, debug.traceback)
    else
      local res = { pcall(ek.run, function()
        local r = { ek.timeout(t.opts.timeout or 60, function()
          local o, e = xpcall(t.fn, debug.traceback)
          if not o then return false, e end
          return true
        end) }
        if r[1] == nil then return false, "test timed out (" .. tostring(r[2]) .. ")" end
        return r[1], r[2]
      end, { workers = t.opts.workers or 2, flavor = t.opts.flavor }) }
      if res[1] then okc, err = res[2], res[3] else okc, err = false, res[2] end
    end
    local dt = ek.now() - t0
    if okc == "skip" then
      skipped = skipped + 1
      print(string.format("skip %s (%s)", label, err))
    elseif okc then
      passed = passed + 1
      if verbose or dt > 2 then print(string.format("ok   %s (%.2f s)", label, dt)) else print("ok   " .. label) end
    else
      failed = failed + 1
      failures[#failures + 1] = label
      print(string.format("FAIL %s\n     %s", label, tostring(err):gsub("\n", "\n     ")))
    end
  end
end
collectgarbage()
local impl = jit and jit.version or _VERSION
print(string.format("%s: %d passed, %d failed, %d skipped", impl, passed, failed, skipped))
for _, f in ipairs(failures) do print("FAILED: " .. f) end
os.exit(failed == 0 and 0 or 1)
