-- wrk script for bench/run_all.py (not a test): one endpoint, a bearer token per request taken
-- in turn from PV_TOKENS (comma-separated), an optional JSON body (PV_BODY) in which "{n}"
-- becomes a per-thread counter; prints one JSON line with requests/s, p50, p99 (ms) and errors
-- (non-2xx answers, socket errors and timeouts).
--
--   PV_METHOD=GET PV_TOKENS=a,b PV_BODY='' wrk -t1 -c64 -d5s -s bench/wrk.lua http://127.0.0.1:5000/api/servers

local tokens = {}
for t in string.gmatch(os.getenv("PV_TOKENS") or "", "[^,]+") do
  tokens[#tokens + 1] = t
end
local method = os.getenv("PV_METHOD") or "GET"
local body = os.getenv("PV_BODY") or ""
local i = 0

request = function()
  i = i + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]
  end
  if body ~= "" then
    headers["Content-Type"] = "application/json"
    return wrk.format(method, nil, headers, (string.gsub(body, "{n}", tostring(i))))
  end
  return wrk.format(method, nil, headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    '{"requests": %d, "rps": %.2f, "p50": %.3f, "p99": %.3f, "errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
