FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# Dependencies first (the project itself is plain source on the path), so code changes rebuild fast.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput
EXPOSE 8012
CMD ["gunicorn", "crm_project.wsgi", "--bind", "0.0.0.0:8012", "--workers", "4", "--access-logfile", "-"]
