-- Services from Lua: a Lua function as a service, calls, the registry,
-- middleware, errors; the Lua code always runs on the state's thread.

test("a Lua function is a service; it may wait", function()
  local svc = assert(ek.service(function(req)
    ek.sleep(0.001)
    return "echo: " .. req
  end))
  ok(tostring(svc):find("ekiden.service"), "tostring")
  eq(svc:call("hi"), "echo: hi", "response")
  eq(svc:status(), "open", "status")
  -- many concurrent calls on one handle
  local g = ek.group()
  local got = {}
  for i = 1, 50 do g:spawn(function() got[i] = svc:call(tostring(i)) end) end
  eq(g:wait(), true, "all calls")
  for i = 1, 50 do eq(got[i], "echo: " .. i, "call " .. i) end
  raises(function() svc:call(print) end, "no message for this value")
  -- a table is a RESP value: the handler gets { ..., n = }
  local shape = ek.service(function(req) return req.n .. ":" .. req[1] end)
  eq(shape:call({ "GET", "k" }), "2:GET", "a table request")
  raises(function() ek.service(42) end, "function expected")
end)

test("a service handler yields inside pcall", function()
  local svc = ek.service(function(req)
    local okc, v = pcall(function() ek.sleep(0.001) return req:upper() end)
    return okc and v or "failed"
  end)
  eq(svc:call("abc"), "ABC", "response from inside pcall")
end)

test("errors inside services: raised, failure returned, wrong type", function()
  local raising = ek.service(function() error("handler failed (expected in this output)") end)
  fails("EHOST", raising:call("x"))
  local failing = ek.service(function() return nil, "ETIMEDOUT: late", "ETIMEDOUT" end)
  fails("ETIMEDOUT", failing:call("x"))
  local wrong = ek.service(function() return 42 end)
  fails("EKIND", wrong:call("x"))
end)

test("the registry: register, lookup, unregister", function()
  local svc = ek.service(function(req) return "reg:" .. req end)
  eq(ek.register("lua.echo", svc), true, "registered")
  fails("EEXIST", ek.register("lua.echo", svc))
  local found = assert(ek.lookup("lua.echo"))
  eq(found:call("x"), "reg:x", "through the registry")
  fails("ENOENT", ek.lookup("no.such.service"))
  eq(ek.unregister("lua.echo"), true, "unregistered")
  fails("ENOENT", ek.lookup("lua.echo"))
  eq(found:call("y"), "reg:y", "a looked-up handle keeps working")
end)

test("a Lua service runs on its state's thread when called from a C worker task", function()
  local me = ek._thread_id()
  local seen = {}
  local svc = ek.service(function(req)
    seen[#seen + 1] = ek._thread_id()
    return req
  end)
  -- ek.middleware.buffer's worker is a C task on the runtime's worker threads:
  -- it calls the Lua service from there.
  local via_workers = assert(ek.middleware.buffer(svc, 8))
  for i = 1, 20 do eq(via_workers:call("m" .. i), "m" .. i, "call " .. i) end
  eq(#seen, 20, "called 20 times")
  for _, t in ipairs(seen) do eq(t, me, "ran on the Lua state's thread") end
end, { workers = 2 })

test("middleware: timeout, concurrency limit, load shed, rate limit, retry, balance", function()
  local slow = ek.service(function(req) ek.sleep(tonumber(req)) return "done" end)
  local t = assert(ek.middleware.timeout(slow, 0.02))
  eq(t:call("0"), "done", "in time")
  fails("ETIMEDOUT", t:call("5"))

  local inside, max_inside = 0, 0
  local counted = ek.service(function()
    inside = inside + 1
    if inside > max_inside then max_inside = inside end
    ek.sleep(0.005)
    inside = inside - 1
    return "ok"
  end)
  local limited = assert(ek.middleware.concurrency_limit(counted, 2))
  local g = ek.group()
  for _ = 1, 8 do g:spawn(function() assert(limited:call("x")) end) end
  eq(g:wait(), true, "all through the limit")
  eq(max_inside, 2, "at most 2 in flight")

  local shed = assert(ek.middleware.load_shed(ek.middleware.concurrency_limit(slow, 1)))
  local first = ek.spawn(function() return shed:call("0.05") end)
  ek.sleep(0.005)
  fails("EOVERLOADED", shed:call("0"))
  eq(first:join(), "done", "the first one went through")

  local rl = assert(ek.middleware.rate_limit(ek.service(function() return "r" end), 2, 0.05))
  local t0 = ek.now()
  for _ = 1, 4 do eq(rl:call("x"), "r", "rate limited call") end
  ok(ek.now() - t0 >= 0.04, "the third call waited for the next window")

  local attempts = 0
  local flaky = ek.service(function()
    attempts = attempts + 1
    if attempts < 3 then error("flaky (expected in this output)") end
    return "third time"
  end)
  local retried = assert(ek.middleware.retry(flaky, 5))
  eq(retried:call("x"), "third time", "retried")
  eq(attempts, 3, "three attempts")

  local a = ek.service(function() return "a" end)
  local b = ek.service(function() return "b" end)
  local bal = assert(ek.middleware.balance({ a, b }))
  local seen = {}
  for _ = 1, 20 do seen[bal:call("x")] = true end
  ok(seen.a or seen.b, "balanced")
  raises(function() ek.middleware.balance({}) end, "at least one")
  raises(function() ek.middleware.concurrency_limit(a, 0) end, "limit must be")
end)

test("a closed service handle gives ECLOSED", function()
  local svc = ek.service(function(r) return r end)
  svc:close()
  svc:close()
  fails("ECLOSED", svc:call("x"))
  fails("ECLOSED", ek.register("closed.one", svc))
  ok(tostring(svc):find("closed"), "tostring")
end)

test("service calls reuse coroutines; a call dropped while its handler waits cancels it", function()
  local started, finished, closed = 0, 0, 0
  -- (a <close> variable on 5.4; the syntax is compiled only there)
  local guarded = LUAJIT and function(f) return f() end or assert(load([[
    local f, on_close = ...
    local _ <close> = setmetatable({}, { __close = on_close })
    return f()
  ]]))
  local svc = ek.service(function(req)
    started = started + 1
    if req == "slow" then
      guarded(function() ek.sleep(30) end, function() closed = closed + 1 end)
    end
    finished = finished + 1
    return "r:" .. req
  end)
  for i = 1, 300 do eq(svc:call(tostring(i)), "r:" .. i, "call " .. i) end
  local limited = assert(ek.middleware.timeout(svc, 0.02))
  fails("ETIMEDOUT", limited:call("slow"))
  eq(started, 301, "the slow handler started")
  -- the dropped call reaches the handler's thread asynchronously: wait (bounded)
  for _ = 1, 500 do
    if closed == 1 or LUAJIT then break end
    ek.sleep(0.01)
  end
  eq(finished, 300, "the slow handler never finished")
  if not LUAJIT then eq(closed, 1, "its <close> variable was closed when it was cancelled") end
  -- a handler that raised does not poison the coroutines reused after it
  local flaky = ek.service(function(req)
    if req == "boom" then error("boom (expected in this output)") end
    ek.yield()
    return req
  end)
  for i = 1, 20 do
    if i % 5 == 0 then fails("EHOST", flaky:call("boom")) else eq(flaky:call("v" .. i), "v" .. i, "after errors") end
  end
end)
