"""A Flask app as a newcomer writes it, for `candado doctor`: a page with an absolute link and
an image built by url_for(_external=True), a session cookie, and a redirect.

`python doctor_flask.py PORT HOST [FIX_FILE]`: FIX_FILE holds the lines `candado doctor`
printed "where the app is created"; they run right after the app is made, as if pasted there.
Each request is appended to $DOCTOR_REQUEST_LOG, so the tests can count what doctor sent.
"""
import os
import sys

from flask import Flask, redirect, request, session, url_for

app = Flask(__name__)
app.secret_key = "test only, not secret"


@app.before_request
def count():
    log = os.environ.get("DOCTOR_REQUEST_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{request.remote_addr} {request.method} {request.path}\n")


@app.get("/")
def index():
    session["seen"] = True
    return (
        f'<html><body><a href="{url_for("landing", _external=True)}">landing</a>'
        f'<img src="{url_for("static", filename="logo.png", _external=True)}"></body></html>'
    )


@app.get("/login")
def login():
    return redirect(url_for("landing", _external=True))


@app.get("/landing")
def landing():
    return f"scheme={request.scheme}"


if __name__ == "__main__":
    port, host = int(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            exec(f.read())
    app.run(host=host, port=port)
