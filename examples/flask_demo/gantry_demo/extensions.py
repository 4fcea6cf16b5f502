"""Extension objects, created unbound so that create_app can configure each app."""

from flask_caching import Cache
from flask_s3 import FlaskS3

cache = Cache()
s3 = FlaskS3()
