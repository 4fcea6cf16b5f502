"""Extension objects, created unbound so that create_app can configure each app."""

from flask_caching import Cache
from flask_migrate import Migrate
from flask_s3 import FlaskS3
from flask_sqlalchemy import SQLAlchemy

cache = Cache()
s3 = FlaskS3()
# The database that outlives releases (orders); the catalogue's SQLite in db.py is not it.
database = SQLAlchemy()
migrate = Migrate()
