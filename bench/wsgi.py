"""`gunicorn bench.wsgi`: the project's WSGI application under bench.settings (row 5)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
application = get_wsgi_application()
