"""WSGI entry point: ``gunicorn gantry_demo.wsgi:app``, ``flask --app gantry_demo.wsgi run``."""

from dotenv import find_dotenv, load_dotenv

from gantry_demo import create_app

# A .env in (or above) the working directory, for local development. Variables already
# in the environment win: in production systemd sets them all.
load_dotenv(find_dotenv(usecwd=True), override=False)

app = create_app()
