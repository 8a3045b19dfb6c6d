-- ekiden.lua - the Lua half of the `ekiden` module, compiled into the C module.
--
-- It receives `core`, the table of C functions, and returns the module. C never
-- yields: a C function that would wait returns core.PENDING (after the runtime
-- has registered the task's waker), and the wrappers here yield the coroutine
-- and call it again when the runtime resumes the task. Yielding happens only in
-- Lua functions, so it works inside pcall, iterators and metamethods, on Lua 5.4
-- and on LuaJIT alike.
local core = ...
local PENDING = core.PENDING
local yield = coroutine.yield
local methods = core.methods
local select, error, type, setmetatable = select, error, type, setmetatable
local unpack = table.unpack or unpack

local ek = {}
ek._VERSION = core.version()
ek.lua_api = core.lua_api

-- Call fn(...) until it stops answering PENDING, yielding in between.
local function waiting(fn)
  return function(...)
    local a, b, c, d = fn(...)
    while a == PENDING do
      yield(PENDING)
      a, b, c, d = fn(...)
    end
    return a, b, c, d
  end
end
ek._waiting = waiting

local await_poll = core.await
local function await(fut)
  local a, b, c = await_poll(fut)
  while a == PENDING do
    yield(PENDING)
    a, b, c = await_poll(fut)
  end
  return a, b, c
end

-- A future constructor followed by its await: fn(...) returns a future or
-- nil, msg, name.
local function awaiting(make)
  return function(...)
    local f, msg, name = make(...)
    if not f then return nil, msg, name end
    return await(f)
  end
end

------------------------------------------------------------------ tasks --

ek.run = core.run
ek.spawn = core.spawn
ek.stats = core.stats
ek.in_task = core.in_task

local task_m = methods["ekiden.task"]
local join_poll = core.join_poll
-- Poll join until the task ended; returns n, {results}. With `also`, gives up
-- (returns nil) as soon as also() is true.
local function join_collect(t, also)
  local n, r
  local function collect(...)
    if ... == PENDING then return true end
    n, r = select("#", ...), { ... }
    return false
  end
  while collect(join_poll(t)) do
    if also and also() then return nil end
    yield(PENDING)
  end
  return n, r
end
function task_m.join(t)
  local n, r = join_collect(t)
  return unpack(r, 1, n)
end
task_m.wait = task_m.join

-- Yield to the scheduler: other tasks run before this one continues.
local yield_now = core.yield_now
function ek.yield()
  yield_now()
  yield(PENDING)
end

------------------------------------------------------------------- time --

ek.now = core.now
ek.sleep = awaiting(core.sleep)

-- ek.timeout(s, fn, ...): fn's results, or nil, "ETIMEDOUT: timed out",
-- "ETIMEDOUT" after s seconds (fn's task is then cancelled). An error raised by
-- fn is raised again here.
local spawn_scoped = core.spawn_scoped
local sleep_make = core.sleep
function ek.timeout(s, fn, ...)
  if type(fn) ~= "function" then error("bad argument #2 to 'timeout' (function expected)", 2) end
  local timer, msg, name = sleep_make(s)
  if not timer then return nil, msg, name end
  local t, m2, n2 = spawn_scoped(fn, ...)
  if not t then timer:cancel() return nil, m2, n2 end
  local n, r = join_collect(t, function() return await_poll(timer) ~= PENDING end)
  if not n then
    t:cancel()
    return nil, "ETIMEDOUT: timed out", "ETIMEDOUT"
  end
  timer:cancel()
  if t:status() == "failed" then error(r[2], 0) end
  return unpack(r, 1, n)
end

-- for tick in ek.interval(s [, policy]) do ... end  (tick: seconds since start)
local interval_make = core.interval
local interval_m = methods["ekiden.interval"]
interval_m.tick = waiting(interval_m.tick)
function ek.interval(s, policy)
  local iv = assert(interval_make(s, policy))
  local tick = interval_m.tick
  return function()
    local t, msg = tick(iv)
    if t == nil then error(msg, 2) end
    return t
  end, nil, nil, iv
end

---------------------------------------------------------------- network --

-- (Stream reads and writes and accept wait from C: their C functions yield and
-- the task's poll retries the operation, resuming the coroutine when it is done.)


local dgram_m = methods["ekiden.udp"]
for _, name in ipairs({ "send_to", "recv_from", "send", "recv" }) do
  dgram_m[name] = waiting(dgram_m[name])
end

ek.tcp = {
  listen = core.tcp_listen,
  connect = awaiting(core.tcp_connect),
}
ek.unix = {
  listen = core.unix_listen,
  connect = awaiting(core.unix_connect),
  pair = core.unix_pair,
  dgram = core.unix_dgram,
}
ek.udp = { bind = core.udp_bind }
ek.resolve = awaiting(core.resolve)
-- ek.buffer(size): a byte buffer that stream:read_into fills and stream:write
-- sends (no string per read: docs/lua.md, "Buffers").
ek.buffer = core.buffer

------------------------------------------------------------------- sync --

-- Operations that wait on an object of their own: the first call returns
-- PENDING and that object, the next calls poll it.
local function waiting_with(first, again)
  return function(obj, ...)
    local a, b, c = first(obj, ...)
    while a == PENDING do
      yield(PENDING)
      a, b, c = again(obj, b)
    end
    return a, b, c
  end
end

local chan_m = methods["ekiden.channel"]
chan_m.send = waiting_with(chan_m.send, chan_m.send_poll)
chan_m.send_poll = nil
chan_m.recv = waiting(chan_m.recv)
-- The iterator of a receiving handle (a channel, a client's pushes): the next
-- value, nil once the handle is closed and drained; any other error is raised.
local function closing_iter(m, mt_name)
  local recv = m.recv
  local function next_value(h)
    local v, msg, name = recv(h)
    if v == nil then
      if name == "ECLOSED" then return nil end
      error(msg, 2)
    end
    return v
  end
  function m.iter(h) return next_value, h end
  core.metatables[mt_name].__call = next_value
end
-- for v in ch:iter() do ... end  (also: for v in ch do): ends when the channel
-- is closed and drained.
closing_iter(chan_m, "ekiden.channel")

-- A client's push frames: for frame in client:pushes():iter() do ... end (also
-- for frame in client:pushes() do): ends when the client is gone or closed.
closing_iter(methods["ekiden.pushes"], "ekiden.pushes")

local sem_m = methods["ekiden.semaphore"]
sem_m.acquire = waiting_with(sem_m.acquire, sem_m.acquire_poll)
sem_m.acquire_poll = nil
local notify_m = methods["ekiden.notify"]
notify_m.wait = waiting_with(notify_m.wait, notify_m.wait_poll)
notify_m.wait_poll = nil

ek.channel = core.channel
ek.semaphore = core.semaphore
ek.notify = core.notify

--------------------------------------------------------------- services --

-- A service is an asynchronous function from request to response. ek.service(fn)
-- makes one from a Lua function (it may wait; it runs on this thread); ek.lookup
-- finds one of any language in the runtime's registry.
local svc_m = methods["ekiden.service"]
local svc_call = svc_m.call
function svc_m.call(s, req)
  local f, msg, name = svc_call(s, req)
  if not f then return nil, msg, name end
  return await(f)
end
ek.service = core.service
ek.register = core.register
ek.lookup = core.lookup
ek.unregister = core.unregister
ek.middleware = {
  timeout = core.mw_timeout,
  concurrency_limit = core.mw_concurrency_limit,
  rate_limit = core.mw_rate_limit,
  load_shed = core.mw_load_shed,
  buffer = core.mw_buffer,
  balance = core.mw_balance,
  retry = core.mw_retry,
}
ek._thread_id = core.thread_id

-- Servers and clients over the C framed I/O: ek.serve{addr = ..., codec =
-- "lines" | "length" | "resp", service = svc} -> server; ek.connect{addr = ...,
-- codec = ...} -> a client service (svc:call sends a request over the
-- connection). RESP values: see docs/lua.md (ek.null is RESP's null).
ek.serve = core.serve
ek.connect = core.connect
ek.null = core.null
local server_m = methods["ekiden.server"]
server_m.shutdown = awaiting(server_m.shutdown)

----------------------------------------------------------------- groups --

-- Structured concurrency: g = ek.group(); g:spawn(fn, ...); g:wait().
-- The first child that raises cancels its siblings; wait() returns true, or
-- nil, err after all children ended. Children are cancelled with the task that
-- created the group.
local group_m = {}
group_m.__index = group_m
function ek.group()
  return setmetatable({ tasks = {}, err = nil, failed = false }, group_m)
end
function group_m:spawn(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'spawn' (function expected)", 2) end
  local g = self
  local args = { n = select("#", ...), ... }
  local me
  local function finish(ok, ...)
    if ok then return ... end
    if not g.failed then
      g.failed, g.err = true, (...)
      for _, other in ipairs(g.tasks) do
        if other ~= me then other:cancel() end
      end
    end
  end
  local t, msg, name = spawn_scoped(function()
    return finish(pcall(fn, unpack(args, 1, args.n)))
  end)
  if not t then return nil, msg, name end
  me = t
  g.tasks[#g.tasks + 1] = t
  return t
end
function group_m:cancel()
  for _, t in ipairs(self.tasks) do t:cancel() end
end
function group_m:wait()
  local i = 1
  while i <= #self.tasks do
    self.tasks[i]:join()
    i = i + 1
  end
  if self.failed then return nil, self.err, "ERROR" end
  return true
end
group_m.__close = function(g) g:cancel() end

return ek
