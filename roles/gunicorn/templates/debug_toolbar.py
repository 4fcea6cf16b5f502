# Flask-DebugToolbar on every page of the app (gunicorn_debug_toolbar, local environment
# only: the toolbar shows the app's config, secrets too, to whoever loads a page). Pasted
# into gunicorn.conf.py by the gunicorn role; tests/test_debug_toolbar.py imports this
# file as is. Each worker adds the toolbar to the app Gunicorn loaded (post_worker_init),
# so the app's code stays as it is; the flask_app role installs the package into the
# release's venv.


def enable_debug_toolbar(app, log):
    """Adds the toolbar to a Flask app; anything else is logged and served as it is.

    The toolbar is a developer's aid: an app it cannot attach to (no SECRET_KEY, not a
    Flask app, an entry point that already served a request) still serves.
    """
    try:
        from flask import Flask
        from flask_debugtoolbar import DebugToolbarExtension

        if not isinstance(app, Flask):
            log.warning(
                "Flask-DebugToolbar is off: the entry point gives a %s, not a Flask app "
                "(wrap the app's wsgi_app attribute instead of the app)",
                type(app).__name__,
            )
            return
        # The toolbar follows app.debug unless told; FLASK_DEBUG stays the app's own.
        app.config["DEBUG_TB_ENABLED"] = True
        # Its page that replaces every redirect would change what forms and clients get.
        app.config["DEBUG_TB_INTERCEPT_REDIRECTS"] = False
        DebugToolbarExtension(app)
    except Exception as error:  # noqa: BLE001 - the app serves whatever the toolbar does
        log.warning("Flask-DebugToolbar is off: %s: %s", type(error).__name__, error)
