"""A Flask app mounted under a route prefix that candado strips (`strip_prefix: true`): it
answers redirects in every form apps write them. Run with `--proxyfix` it is prefix-aware
(Werkzeug's ProxyFix with x_prefix=1 reads X-Forwarded-Prefix into SCRIPT_NAME, so url_for
builds /prefix/... itself); without it, it believes it lives at /.
"""
import sys

from flask import Flask, make_response, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
port = int(sys.argv[1])
if "--proxyfix" in sys.argv:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)


@app.get("/target")
def target():
    return f"target script_name={request.script_root}"


@app.get("/absolute")
def absolute():
    # An app that names its own address, as many do from a BASE_URL setting.
    return redirect(f"http://127.0.0.1:{port}/target")


@app.get("/root-relative")
def root_relative():
    return redirect("/target")


@app.get("/url-for")
def with_url_for():
    return redirect(url_for("target"))


@app.get("/url-for-external")
def with_url_for_external():
    return redirect(url_for("target", _external=True))


@app.get("/refresh")
def refresh():
    resp = make_response("moving")
    resp.headers["Refresh"] = "0; url=/target"
    return resp


@app.get("/content-location")
def content_location():
    resp = make_response("here")
    resp.headers["Content-Location"] = f"http://127.0.0.1:{port}/target?v=1"
    return resp


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port, threaded=True)
