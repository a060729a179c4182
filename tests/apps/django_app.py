"""A one-file Django project, for the README's "Your app behind candado".

`python django_app.py PORT plain|proxy ORIGIN` runs Django's own server (as `manage.py
runserver` does). `proxy` adds the two settings an app behind a TLS proxy needs:
SECURE_PROXY_SSL_HEADER (request.is_secure() from X-Forwarded-Proto) and CSRF_TRUSTED_ORIGINS.
"""
import sys

from django.conf import settings
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.urls import path

port, kind, origin = int(sys.argv[1]), sys.argv[2], sys.argv[3]
extra = {}
if kind == "proxy":
    extra = {
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "CSRF_TRUSTED_ORIGINS": [origin],
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_SECURE": True,
    }
settings.configure(
    DEBUG=False,
    SECRET_KEY="test only, not secret",
    ALLOWED_HOSTS=["app.test", "127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    INSTALLED_APPS=[],
    **extra,
)


def index(request):
    token = get_token(request)
    return HttpResponse(
        f"secure={request.is_secure()} url={request.build_absolute_uri('/')} token={token}",
        content_type="text/plain",
    )


def post(request):
    return HttpResponse(f"posted {request.POST.get('note', '')}", content_type="text/plain")


urlpatterns = [path("", index), path("post", post)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "runserver", f"127.0.0.1:{port}", "--noreload"])
