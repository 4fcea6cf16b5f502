"""The catalogue: a blueprint with its own templates and static files.

Flask serves its static files at <url_prefix><static_url_path>, /catalog/static/...,
which is also the key layout Flask-S3 uploads them under.
"""

from flask import Blueprint, render_template

from ..db import get_db

bp = Blueprint(
    "catalog",
    __name__,
    url_prefix="/catalog",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)


@bp.get("/")
def index():
    rows = get_db().execute("SELECT sku, name, price_cents, image FROM items ORDER BY name")
    return render_template("catalog/index.html", items=rows.fetchall())
