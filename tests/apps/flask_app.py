"""A Flask app as users write it, run behind candado in the tests.

ProxyFix trusts one proxy's X-Forwarded-* headers, so url_for(_external=True) builds https://
URLs with the public host: the Flask hardening advice holds without the app knowing about TLS.
"""
import hashlib
import sys

from flask import Flask, make_response, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)


@app.get("/")
def index():
    resp = make_response(url_for("landing", _external=True))
    resp.set_cookie("session", "abc", httponly=True)
    resp.set_cookie("theme", "dark")
    return resp


@app.get("/login")
def login():
    return redirect(url_for("landing", _external=True))


@app.get("/landing")
def landing():
    return f"scheme={request.scheme} remote={request.remote_addr}"


@app.get("/whoami")
def whoami():
    # Behind candado with client_auth, the verified client certificate arrives in headers.
    subject = request.headers.get("X-Client-Cert-Subject", "none")
    fingerprint = request.headers.get("X-Client-Cert-Fingerprint", "none")
    return f"subject={subject} fingerprint={fingerprint}"


@app.post("/upload")
def upload():
    data = request.files["file"].read()
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
