-- wrk script of the memory soak (benches/load/soak.sh): sends each token of
-- WRK_TOKENS_FILE exactly once (one thread), then stops. done() prints one RESULT line.

local tokens, n, i, answered = {}, 0, 0, 0

function init(args)
  for line in io.lines(os.getenv("WRK_TOKENS_FILE")) do
    if line ~= "" then
      n = n + 1
      tokens[n] = "Bearer " .. line
    end
  end
  if n == 0 then error("no tokens in WRK_TOKENS_FILE") end
end

function request()
  i = i + 1
  -- Past the end (requests still in flight on other connections): repeat the last token,
  -- which is already cached, until the responses below stop the thread.
  return wrk.format(nil, nil, { ["Authorization"] = tokens[math.min(i, n)] })
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= n then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
end
