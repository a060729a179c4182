"""A bare WSGI app on the standard library's server (wsgiref), which folds `_` and `-` in
header names together as CGI and WSGI do: `X_Real_IP` and `X-Real-IP` both become
HTTP_X_REAL_IP. It answers with the HTTP_* keys of its environ, one `KEY=value` per line.
"""
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def app(environ, start_response):
    lines = [f"{k}={v}" for k, v in sorted(environ.items()) if k.startswith("HTTP_")]
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, Server, QuietHandler).serve_forever()
