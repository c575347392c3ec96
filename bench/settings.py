"""The product's settings with the benchmark's URLs on top (row 5's bare views); used only by the
gunicorn that bench/ starts, so the product itself carries no benchmark code."""

from crm_project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
