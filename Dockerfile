FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# Dependencies first (the project itself is plain source on the path), so code changes rebuild fast.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
RUN APP_ENV=development python manage.py collectstatic --noinput
# The code stays root's and read-only to the app; the app writes only under var/ (uploads, beat's
# schedule), as a user without a shell or a home.
RUN useradd --system --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p var/media && chown -R app:app var
USER app
# Production unless told otherwise: the settings refuse to start without a sound SECRET_KEY,
# ALLOWED_HOSTS and an https APP_URL (crm_project/production.py).
ENV APP_ENV=production
EXPOSE 8012
CMD ["gunicorn", "crm_project.wsgi", "--bind", "0.0.0.0:8012", "--workers", "4", "--access-logfile", "-"]
