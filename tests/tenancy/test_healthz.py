def test_it_reports_every_dependency_up(client, db, redis_service, rabbitmq_service):
    response = client.get("/healthz", HTTP_HOST="tenant-a.localhost")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {"database", "redis", "events_broker"} <= set(body["checks"])
    assert response["Cache-Control"] == "no-store"


def test_it_answers_503_when_a_dependency_is_down(client, db, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    response = client.get("/healthz", HTTP_HOST="localhost")
    assert response.status_code == 503
    assert response.json()["checks"]["events_broker"]["ok"] is False
