"""Development and test launcher behind `make run` and `make test`.

It decides what the environment lacks and fills it in before Django starts (settings read only the
environment): a PostgreSQL (the local server if one answers, else an embedded one from the
`pgserver` package, data under var/), Redis if it answers (else tasks run in-process and mail goes
to .eml files), and says so.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import psycopg

from core.net import reachable

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = BASE_DIR / "var"
PY = sys.executable
NO_TESTS_COLLECTED = 5  # pytest's exit code when a phase selects nothing (a path with no serial tests)
DEMO = {
    "slug": "demo",
    "domain": "demo.localhost",
    "email": "admin@demo.localhost",
    "password": "demo-admin-2024",
}


# `make run` and `make bench` run in development whatever .env says: .env may be a copy of the
# production-shaped .env.example. Set in the shell, APP_ENV still wins (load_dotenv never overrides).
DEVELOPMENT = "development"


def say(message):
    print(f"[crm] {message}", flush=True)


def load_dotenv(path=BASE_DIR / ".env"):
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key.strip(), value.strip().strip('"').strip("'"))


def embedded_postgres(database):
    """Start (or reuse) the embedded PostgreSQL under var/pgdata; return a DATABASE_URL for it."""
    import pgserver  # noqa: PLC0415  (0.5 s and a warning at import; only when no PostgreSQL answers)

    data = VAR / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data), cleanup_mode=None)  # keeps running between commands
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return f"postgres://postgres@{quote(str(data), safe='')}/{database}"


def ensure_database(url):
    """Create the configured database when the server answers but it does not exist yet."""
    config = dj_database_url.parse(url)
    params = {
        "dbname": "postgres",
        "user": config["USER"] or "postgres",
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "password": config["PASSWORD"] or None,
    }
    try:
        with psycopg.connect(
            **{k: v for k, v in params.items() if v}, autocommit=True, connect_timeout=3
        ) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
                conn.execute(f'CREATE DATABASE "{config["NAME"]}"')
    except psycopg.Error as exc:
        say(f"could not check database {config['NAME']}: {exc}")


def choose_database(*, prefer_local):
    if os.environ.get("DATABASE_URL"):
        ensure_database(os.environ["DATABASE_URL"])
        return "configured"
    if prefer_local and reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/crm"
        ensure_database(os.environ["DATABASE_URL"])
        return "local PostgreSQL at 127.0.0.1:5432"
    os.environ["DATABASE_URL"] = embedded_postgres("crm")
    return "embedded PostgreSQL (pgserver) with data in var/pgdata"


def choose_services():
    notes = []
    if "REDIS_URL" not in os.environ:
        if reachable("127.0.0.1", 6379):
            os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        else:
            os.environ["REDIS_URL"] = ""
    if not os.environ["REDIS_URL"]:
        os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
        os.environ.setdefault("CELERY_BROKER_URL", "memory://")
        notes.append("no Redis reachable: tasks run in-process (no worker, no beat), cache is in memory")
    if "MAIL_MAILER" not in os.environ:
        host, port = os.environ.get("EMAIL_HOST", "127.0.0.1"), int(os.environ.get("EMAIL_PORT", "1025"))
        if not reachable(host, port):
            os.environ["MAIL_MAILER"] = "file"
            notes.append(f"no SMTP server at {host}:{port}: mail is written as .eml files to var/mail/")
    if not reachable("127.0.0.1", 5672) and "EVENTS_BROKER_URL" not in os.environ:
        notes.append("no RabbitMQ reachable: events wait in the outbox until one is")
    return notes


def manage(*args, check=True):
    return subprocess.run([PY, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR, check=check)


def run():
    os.environ.setdefault("APP_ENV", DEVELOPMENT)
    load_dotenv()
    os.environ.setdefault("APP_URL", "http://localhost:8012")
    database = choose_database(prefer_local=False)
    say(f"database: {database}")
    for note in choose_services():
        say(note)
    manage("migrate", "--noinput", "-v", "0")
    manage(
        "seed_demo",
        "--slug",
        DEMO["slug"],
        "--domain",
        DEMO["domain"],
        "--admin-email",
        DEMO["email"],
        "--admin-password",
        DEMO["password"],
    )
    children = []
    if os.environ.get("REDIS_URL"):
        celery = shutil.which("celery", path=str(Path(PY).parent)) or "celery"
        children.append(
            subprocess.Popen(
                [
                    celery,
                    "-A",
                    "crm_project",
                    "worker",
                    "-l",
                    "warning",
                    "-B",
                    "--concurrency",
                    "2",
                    "-Q",
                    os.environ.get("CELERY_QUEUE", "crm"),
                    "--schedule",
                    str(VAR / "celerybeat-schedule"),
                ],
                cwd=BASE_DIR,
            )
        )
        say("Celery worker and beat started")
    if reachable("127.0.0.1", 5672) or os.environ.get("EVENTS_BROKER_URL"):
        children.append(
            subprocess.Popen([PY, str(BASE_DIR / "manage.py"), "consume_webshop_events"], cwd=BASE_DIR)
        )
        say("webshop event consumer started (exchange webshop.events)")
    port = os.environ.get("PORT", "8012")
    say(f"admin:    http://{DEMO['domain']}:{port}/admin/   login {DEMO['email']} / {DEMO['password']}")
    say(f"API docs: http://{DEMO['domain']}:{port}/api/docs/")
    say(f"operators (public host): http://localhost:{port}/admin/  (python manage.py createsuperuser)")
    web = subprocess.Popen(
        [PY, str(BASE_DIR / "manage.py"), "runserver", f"0.0.0.0:{port}", "--noreload"], cwd=BASE_DIR
    )
    children.append(web)

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(child.poll() is None for child in children):
        time.sleep(1)
    stop()


def test(args):
    load_dotenv(BASE_DIR / ".env.test")
    database = choose_database(prefer_local=True)
    say(f"database: {database}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("MAIL_MAILER", "locmem")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    pytest = [PY, "-m", "pytest"]
    args, marks, workers = _phase_options(args)
    workers = workers or os.environ.get("TEST_WORKERS", "3")
    if workers in {"0", "1"}:
        return subprocess.run([*pytest, *(["-m", marks] if marks else []), *args], cwd=BASE_DIR).returncode
    # Two phases: the tests in parallel processes, each with its own test database, Redis database,
    # queue and exchanges (tests/parallel.py), files kept together for their module fixtures; then,
    # alone, the tests that stop a server all the processes share. Most tests wait on a worker, a
    # browser or a socket, so three processes beat two on two cores. `-n N` in ARGS sets the number.
    within = f"({marks}) and " if marks else ""
    parallel = subprocess.run(
        [*pytest, "-n", workers, "--dist", "loadfile", "-m", f"{within}not serial", *args], cwd=BASE_DIR
    ).returncode
    serial = subprocess.run([*pytest, "-m", f"{within}serial", *args], cwd=BASE_DIR).returncode
    codes = [code for code in (parallel, serial) if code != NO_TESTS_COLLECTED]
    return max(codes, default=NO_TESTS_COLLECTED)


def _phase_options(args):
    """(the arguments without `-m EXPR` and `-n N`, EXPR or "", N or ""): each phase adds its own
    condition to the caller's marks, and only the parallel phase runs in N processes."""
    rest, taken = [], {"-m": "", "-n": ""}
    arguments = iter(args)
    for arg in arguments:
        if arg in taken:
            taken[arg] = next(arguments, "")
        elif arg[:2] in taken and len(arg) > 2:  # `-n4`, `-mslow`: pytest's short options take both forms
            taken[arg[:2]] = arg[2:]
        else:
            rest.append(arg)
    return rest, taken["-m"], taken["-n"]


def bench(args):
    """`make bench`: the benchmark suite (bench/) on a database of its own, never the dev data."""
    os.environ.setdefault("APP_ENV", DEVELOPMENT)
    load_dotenv()
    if os.environ.get("BENCH_DATABASE_URL"):
        os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
        ensure_database(os.environ["DATABASE_URL"])
    elif not os.environ.get("DATABASE_URL", "").rstrip("/").endswith("bench"):
        if reachable("127.0.0.1", 5432):
            os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/crm_bench"
            ensure_database(os.environ["DATABASE_URL"])
        else:
            os.environ["DATABASE_URL"] = embedded_postgres("crm_bench")
    say(f"benchmark database: {os.environ['DATABASE_URL'].rsplit('/', 1)[-1]}")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Its own queue, so no other worker on the same Redis takes the benchmark's send tasks.
    os.environ.setdefault("CELERY_QUEUE", "crm_bench")
    os.environ["DEBUG"] = "false"
    manage("migrate", "--noinput", "-v", "0")
    return subprocess.run([PY, "-m", "bench", *args], cwd=BASE_DIR).returncode


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "run"
    if mode == "run":
        run()
    elif mode == "test":
        sys.exit(test(sys.argv[2:]))
    elif mode == "bench":
        sys.exit(bench(sys.argv[2:]))
    else:
        sys.exit("usage: python -m crm_project.devenv run|test|bench [args]")
