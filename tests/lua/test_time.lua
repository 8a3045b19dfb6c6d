-- Time: ek.sleep, ek.timeout, ek.interval, ek.now.

test("now is monotonic seconds", function()
  local a = ek.now()
  ek.sleep(0.02)
  local b = ek.now()
  ok(b - a >= 0.019, "slept at least 20 ms: " .. (b - a))
  eq(type(a), "number", "type")
end)

test("sleep: arguments and zero", function()
  eq(ek.sleep(0), true, "sleep 0")
  raises(function() ek.sleep(-1) end, "seconds >= 0")
  raises(function() ek.sleep("x") end, "number expected")
end)

test("many sleeps wake in order of their deadlines", function()
  local order = {}
  local ts = {}
  for i = 5, 1, -1 do
    ts[#ts + 1] = ek.spawn(function() ek.sleep(0.01 * i) order[#order + 1] = i end)
  end
  for _, t in ipairs(ts) do t:join() end
  eq(table.concat(order, ","), "1,2,3,4,5", "order")
end)

test("timeout: in time, late, errors, arguments", function()
  eq(select("#", ek.timeout(1, function(a, b) return a, b end, 1, nil)), 2, "results count")
  local a, b = ek.timeout(1, function(x) ek.sleep(0.001) return x * 2, "y" end, 21)
  eq(a, 42, "value")
  eq(b, "y", "second")
  local t0 = ek.now()
  fails("ETIMEDOUT", ek.timeout(0.02, function() ek.sleep(10) end))
  ok(ek.now() - t0 < 5, "returned at the deadline")
  raises(function() ek.timeout(1, function() ek.sleep(0.001) error("inner", 0) end) end, "inner")
  raises(function() ek.timeout(1, 42) end, "function expected")
  raises(function() ek.timeout(-1, function() end) end, "seconds >= 0")
  -- nested timeouts: the inner one fires first
  fails("ETIMEDOUT", ek.timeout(1, function()
    return ek.timeout(0.01, function() ek.sleep(10) end)
  end))
end)

test("interval: a for loop, and break closes it", function()
  local n, last = 0, -1
  local t0 = ek.now()
  for tick in ek.interval(0.01) do
    ok(tick > last, "ticks increase")
    last = tick
    n = n + 1
    if n == 5 then break end
  end
  eq(n, 5, "five ticks")
  ok(ek.now() - t0 >= 0.035, "four periods passed")
  raises(function() ek.interval(0) end, "at least")
  raises(function() ek.interval(0.01, "sometimes") end, "invalid option")
end)

test("interval ticks while other tasks run", function()
  local ticks = 0
  local t = ek.spawn(function() for _ in ek.interval(0.005, "skip") do ticks = ticks + 1 end end)
  ek.sleep(0.05)
  t:cancel()
  ok(ticks >= 2, "ticked " .. ticks)
end)
