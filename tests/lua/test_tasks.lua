-- Tasks: ek.run, ek.spawn, join/cancel/done, groups, yields across pcall and
-- iterators, errors, 10,000 concurrent tasks.

test("run returns the main function's results", function()
  -- (this test body itself runs inside ek.run; a nested run must refuse)
  raises(function() ek.run(function() end) end, "already running")
end)

test("run outside: results and errors of the main task", function()
  local a, b, c = ek.run(function() ek.sleep(0.001) return 1, nil, "three" end)
  eq(a, 1, "first")
  eq(b, nil, "second")
  eq(c, "three", "third")
  local err = raises(function() ek.run(function() ek.sleep(0.001) error({ code = 7 }) end) end)
  eq(type(err), "table", "error object is passed through")
  eq(err.code, 7, "error object field")
  raises(function() ek.run(42) end, "function expected")
  raises(function() ek.run(function() end, { workers = 0 }) end, "workers must be")
  raises(function() ek.run(function() end, { flavor = "fast" }) end, "flavor")
  eq(ek.run(function() return "ct" end, { flavor = "current_thread" }), "ct", "current_thread run")
  eq(ek.run(function() return "one" end, { workers = 1 }), "one", "one worker")
end, { outside = true })

test("spawn outside a run raises", function()
  raises(function() ek.spawn(function() end) end, "no runtime")
  raises(function() ek.sleep(0.01) end, "no runtime")
end, { outside = true })

test("spawn and join return the results", function()
  local t = ek.spawn(function(a, b) ek.sleep(0.005) return a + b, "x" end, 2, 3)
  ok(tostring(t):find("ekiden.task"), "tostring")
  eq(t:done(), false, "not done yet")
  local s, x = t:join()
  eq(s, 5, "sum")
  eq(x, "x", "second result")
  eq(t:done(), true, "done")
  eq(t:status(), "done", "status")
  -- joining again gives the same results
  eq((t:join()), 5, "second join")
  -- a task that returns nothing
  local t2 = ek.spawn(function() end)
  eq(select("#", t2:join()), 0, "no results")
end)

test("join of a failed task returns nil, err", function()
  local t = ek.spawn(function() ek.sleep(0.001) error("bad thing", 0) end)
  local a, b, c = t:join()
  eq(a, nil, "nil")
  eq(b, "bad thing", "error value")
  eq(c, "ERROR", "name")
  eq(t:status(), "failed", "status")
end)

test("cancel a waiting task: join gives ECANCELED", function()
  local reached = false
  local t = ek.spawn(function() ek.sleep(10) reached = true end)
  ek.sleep(0.005)
  t:cancel()
  fails("ECANCELED", t:join())
  eq(t:status(), "cancelled", "status")
  eq(reached, false, "did not continue after the sleep")
  t:cancel() -- idempotent
end)

test("cancel before the task ever ran", function()
  local ran = false
  local t = ek.spawn(function() ran = true end)
  t:cancel()
  fails("ECANCELED", t:join())
  eq(ran, false, "never ran")
end)

test("to-be-closed variables of a cancelled task are closed", function()
  if not ek.lua_api:find("5.4") then return end
  local closed = false
  local t = ek.spawn(load([[
    local ek, mark = ...
    local guard <close> = setmetatable({}, { __close = function() mark() end })
    ek.sleep(10)
  ]]), ek, function() closed = true end)
  ek.sleep(0.005)
  t:cancel()
  t:join()
  eq(closed, true, "__close ran on cancellation")
end)

test("a task cannot join itself", function()
  local me
  me = ek.spawn(function()
    ek.sleep(0.001)
    return pcall(function() return me:join() end)
  end)
  local okc, err = me:join()
  eq(okc, false, "pcall failed")
  matches(err, "cannot join itself")
end)

test("many tasks join one task", function()
  local target = ek.spawn(function() ek.sleep(0.01) return "v" end)
  local js = {}
  for i = 1, 20 do js[i] = ek.spawn(function() return target:join() end) end
  for i = 1, 20 do eq(js[i]:join(), "v", "joiner " .. i) end
end)

test("yield inside pcall, xpcall, an iterator and a metamethod", function()
  local okc, v = pcall(function() ek.sleep(0.001) return "in pcall" end)
  eq(okc, true, "pcall ok")
  eq(v, "in pcall", "pcall value")
  local ok2, v2 = xpcall(function() ek.sleep(0.001) return "in xpcall" end, debug.traceback)
  eq(ok2, true, "xpcall ok")
  eq(v2, "in xpcall", "xpcall value")
  -- error after a yield inside pcall is caught
  local ok3, e3 = pcall(function() ek.sleep(0.001) error("late", 0) end)
  eq(ok3, false, "pcall caught")
  eq(e3, "late", "late error")
  -- a generic-for iterator that waits
  local function slow_range(n)
    local i = 0
    return function()
      ek.sleep(0.001)
      i = i + 1
      if i <= n then return i end
    end
  end
  local sum = 0
  for i in slow_range(4) do sum = sum + i end
  eq(sum, 10, "iterator sum")
  -- a metamethod that waits
  local mt = { __index = function(_, k) ek.sleep(0.001) return k .. "!" end }
  eq(setmetatable({}, mt).hi, "hi!", "__index yielded")
end)

test("an operation from a coroutine of the user's own raises a clear error", function()
  local co = coroutine.create(function() ek.sleep(0.001) end)
  local okc, err = coroutine.resume(co)
  eq(okc, false, "resume failed")
  matches(err, "own coroutine")
end)

test("coroutine.yield() in a task yields to the scheduler", function()
  local order = {}
  local a = ek.spawn(function() for i = 1, 3 do order[#order + 1] = "a" .. i coroutine.yield() end end)
  local b = ek.spawn(function() for i = 1, 3 do order[#order + 1] = "b" .. i ek.yield() end end)
  a:join()
  b:join()
  eq(#order, 6, "all ran")
  local interleaved = false
  for i = 2, 6 do if order[i]:sub(1, 1) ~= order[i - 1]:sub(1, 1) then interleaved = true end end
  ok(interleaved, "the two tasks interleaved: " .. table.concat(order, " "))
end)

test("group: results, and the first error cancels the siblings", function()
  local g = ek.group()
  local t1 = g:spawn(function() ek.sleep(0.002) return 1 end)
  local t2 = g:spawn(function() ek.sleep(0.004) return 2 end)
  eq(g:wait(), true, "all ok")
  eq(t1:join(), 1, "t1")
  eq(t2:join(), 2, "t2")

  local g2 = ek.group()
  local slow_finished = false
  local slow = g2:spawn(function() ek.sleep(10) slow_finished = true end)
  g2:spawn(function() ek.sleep(0.005) error("child failed", 0) end)
  local t0 = ek.now()
  local r, err, name = g2:wait()
  eq(r, nil, "wait failed")
  eq(err, "child failed", "the child's error")
  eq(name, "ERROR", "name")
  ok(ek.now() - t0 < 5, "did not wait for the slow sibling")
  eq(slow:status(), "cancelled", "sibling cancelled")
  eq(slow_finished, false, "sibling did not finish")
  raises(function() g2:spawn(42) end, "function expected")
end)

test("children of a cancelled task's group are cancelled with it", function()
  local child
  local parent = ek.spawn(function()
    local g = ek.group()
    child = g:spawn(function() ek.sleep(10) end)
    g:wait()
  end)
  ek.sleep(0.005)
  parent:cancel()
  fails("ECANCELED", parent:join())
  fails("ECANCELED", child:join())
end)

test("an error in a detached task does not stop the others", function()
  ek.spawn(function() error("detached failure (expected in this test's output)", 0) end)
  ek.sleep(0.005)
  collectgarbage()
  eq(ek.spawn(function() return "alive" end):join(), "alive", "still running")
end)

test("10,000 concurrent tasks", function()
  local n = math.max(100, math.floor(10000 * SCALE))
  local done = 0
  local ts = {}
  for i = 1, n do
    ts[i] = ek.spawn(function(k)
      ek.sleep(0.01)
      ek.yield()
      done = done + 1
      return k
    end, i)
  end
  eq(ek.stats().tasks >= n, true, "tasks alive")
  local sum = 0
  for i = 1, n do sum = sum + ts[i]:join() end
  eq(done, n, "all finished")
  eq(sum, n * (n + 1) / 2, "sum of results")
end, { timeout = 120 })

test("tasks left pending at the end of a run are cancelled", function()
  local closed = 0
  local t
  ek.run(function()
    t = ek.spawn(function() ek.sleep(10) closed = closed + 1 end)
    for i = 1, 100 do ek.spawn(function() ek.sleep(10) end) end
    ek.sleep(0.002)
  end)
  eq(t:status(), "cancelled", "pending task was cancelled")
  eq(closed, 0, "it never resumed")
  -- its handle still works outside the run
  eq(t:done(), true, "done")
  collectgarbage()
end, { outside = true })
