"""A one-file Django project for `candado doctor`: a page with an absolute link and a form
(CSRF token), the CSRF cookie, and optionally SECURE_SSL_REDIRECT.

`python doctor_django.py PORT [FIX_FILE] [--ssl-redirect]`: FIX_FILE holds the settings
`candado doctor` printed for settings.py; they are added to the settings as if pasted there.
"""
import os
import sys

from django.conf import settings
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.urls import path

port = int(sys.argv[1])
args = [a for a in sys.argv[2:] if not a.startswith("--")]
fixes = {}
if args:
    with open(args[0]) as f:
        exec(f.read(), {}, fixes)
settings.configure(
    DEBUG=False,
    SECRET_KEY="test only, not secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        f"{__name__}.counting",
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    INSTALLED_APPS=[],
    SECURE_SSL_REDIRECT="--ssl-redirect" in sys.argv,
    **fixes,
)


def counting(get_response):
    """Appends each request to $DOCTOR_REQUEST_LOG, so the tests can count what doctor sent."""
    def middleware(request):
        log = os.environ.get("DOCTOR_REQUEST_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{request.META.get('REMOTE_ADDR')} {request.method} {request.path}\n")
        return get_response(request)

    return middleware


def index(request):
    token = get_token(request)
    return HttpResponse(
        f'<html><body><a href="{request.build_absolute_uri("/")}">home</a>'
        f'<form method="post" action="/post"><input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        '<input name="note"></form></body></html>'
    )


def post(request):
    return HttpResponse(f"posted {request.POST.get('note', '')}", content_type="text/plain")


urlpatterns = [path("", index), path("post", post)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "runserver", f"127.0.0.1:{port}", "--noreload"])
