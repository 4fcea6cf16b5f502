"""Alembic's environment under Flask-Migrate: the app's engine and its models' metadata.

Flask-Migrate runs this inside the app context of ``flask db ...``, so the database is
the one the app itself is configured with (DATABASE_URL, see settings.database_uri).
"""

from logging.config import fileConfig

from alembic import context
from flask import current_app

# Loggers made before this (Flask-Migrate's, which reports a failed command) must keep
# working, or the release phase's output would not say why the migration failed.
if context.config.config_file_name:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

migrate = current_app.extensions["migrate"]


def run_offline() -> None:
    """``flask db upgrade --sql``: print the SQL instead of running it."""
    context.configure(
        url=migrate.db.engine.url.render_as_string(hide_password=False),
        target_metadata=migrate.db.metadata,
        literal_binds=True,
        **migrate.configure_args,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # One connection and one transaction for the whole run: on PostgreSQL a migration
    # that fails leaves no part of the run applied.
    with migrate.db.engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=migrate.db.metadata, **migrate.configure_args
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
