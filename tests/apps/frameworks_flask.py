"""Flask as a newcomer writes it, with and without Werkzeug's ProxyFix, for the README's
"Your app behind candado". `python frameworks_flask.py PORT plain|proxyfix` runs Werkzeug's
server; `gunicorn frameworks_flask:plain` runs the app without ProxyFix under gunicorn.
"""
import sys

from flask import Flask, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix


def create(proxy_fix):
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"url={url_for('index', _external=True)} secure={request.is_secure}"

    if proxy_fix:
        # One proxy (candado) in front: trust one hop of X-Forwarded-For/-Proto/-Host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    return app


plain = create(False)
proxyfix = create(True)

if __name__ == "__main__":
    port, kind = int(sys.argv[1]), sys.argv[2]
    app = proxyfix if kind == "proxyfix" else plain
    app.run(host="127.0.0.1", port=port)
