"""The notes blueprint: a list and one page per note."""

from flask import Blueprint, abort, current_app, render_template

bp = Blueprint("notes", __name__, url_prefix="/notes")


@bp.get("/")
def index():
    return render_template("notes/index.html", notes=current_app.config["NOTES"])


@bp.get("/<int:number>")
def show(number):
    all_notes = current_app.config["NOTES"]
    if not 1 <= number <= len(all_notes):
        abort(404)
    return render_template("notes/show.html", note=all_notes[number - 1])
