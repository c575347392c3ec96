-- wrk script for bench/soak.py: replays a list of requests (method, host, path, token) round-robin
-- across tenants, counts every response that is not 2xx/3xx, and prints a JSON summary.
local requests = {}
local counter = 0
errors = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("SOAK_REQUESTS")) do
    local method, host, path, token = line:match("^(%S+)\t(%S+)\t(%S+)\t?(%S*)$")
    local headers = {["Host"] = host, ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) soak"}
    if token ~= "" then headers["Authorization"] = "Token " .. token end
    table.insert(requests, wrk.format(method, path, headers))
  end
  counter = math.random(#requests)
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function response(status, headers, body)
  if status >= 400 then errors = errors + 1 end
end

function done(summary, latency, requests_)
  local errs = 0
  for _, thread in ipairs(threads) do errs = errs + thread:get("errors") end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_2xx_3xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, errs,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
