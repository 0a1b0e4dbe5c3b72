-- wrk script: each request creates one agent with a unique name.
local token = os.getenv("MONTI_BENCH_TOKEN")
local counter = 0
local thread_tag = tostring(math.random(1, 1000000000))

request = function()
  counter = counter + 1
  local body = string.format('{"name":"Bench agent %s-%d","skills":["bench"]}', thread_tag, counter)
  return wrk.format("POST", "/api/v1/agents",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end
