-- A non-idempotent request: nginx never retries it on another upstream entry.
wrk.method = "POST"
wrk.body = "x=1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
