"""A bare WSGI app for the leak-guard benchmark: 20 ms of waiting per request, like an
app calling a database, and nothing of Gantry's sample app."""

import time


def app(environ, start_response):
    time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
