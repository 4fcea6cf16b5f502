-- wrk script for the load cases: while the flag file exists (a deploy is running), each
-- connection pauses between requests. On two cores a load at full speed starves the
-- deploy (a 2-minute deploy took 12), and every request it adds beyond the case's count
-- proves nothing more. The load stays continuous, and idle keep-alive connections are
-- what a reload most easily drops. Without the flag it runs at full speed.
local flag = os.getenv("GANTRY_LOAD_PACE_FLAG")
local pause_ms = tonumber(os.getenv("GANTRY_LOAD_PACE_MS") or "200")

function delay()
  if flag then
    local handle = io.open(flag, "r")
    if handle then
      handle:close()
      return pause_ms
    end
  end
  return 0
end
