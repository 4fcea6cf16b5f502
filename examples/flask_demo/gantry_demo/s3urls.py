"""Compatibility shim: the Jinja ``url_for`` that sends static files to S3 or the CDN.

It replaces the one Flask-S3 0.3.3 installs, which hands "<host>/<FLASKS3_PREFIX>" to
Werkzeug's ``Map.bind()`` as a server name. Werkzeug 3 lowercases and IDNA-encodes
server names, so a prefix with capitals points at keys that were never uploaded, and
more than 63 characters between two dots of host and prefix turn every page into a
400 Bad Request. Here the prefix stays out of the host; the URLs follow the layout
Flask-S3 uploads: <prefix><url_prefix><static_url_path>/<file>. As with Flask-S3,
templates name static endpoints in full (``catalog.static``, not ``.static``).
"""

from flask import Flask, current_app, url_for


def asset_base_url(config) -> str:
    """Scheme, host and prefix that every static URL starts with."""
    scheme = "https" if config["FLASKS3_USE_HTTPS"] else "http"
    bucket, domain = config["FLASKS3_BUCKET_NAME"], config["FLASKS3_BUCKET_DOMAIN"]
    style = config["FLASKS3_URL_STYLE"]
    if config["FLASKS3_CDN_DOMAIN"]:
        host = config["FLASKS3_CDN_DOMAIN"]
    elif style == "host":
        host = f"{bucket}.{domain}"
    elif style == "path":
        host = f"{domain}/{bucket}"
    else:
        raise ValueError(f"FLASKS3_URL_STYLE must be host or path, not {style!r}")
    prefix = config["FLASKS3_PREFIX"].strip("/")
    return f"{scheme}://{host}/{prefix}" if prefix else f"{scheme}://{host}"


def init_app(app: Flask) -> None:
    """Install the shim; call after ``FlaskS3.init_app``, which may deactivate S3."""
    if not app.config["FLASKS3_ACTIVE"]:
        return
    base = asset_base_url(app.config)

    def s3_url_for(endpoint: str, **values) -> str:
        if endpoint != "static" and not endpoint.endswith(".static"):
            return url_for(endpoint, **values)
        # Bound to no host, the map builds only the path, quoted and with its case.
        return base + current_app.url_map.bind("").build(endpoint, values)

    app.jinja_env.globals["url_for"] = s3_url_for
