"""Scale-out mode's database: the same gateway on a real PostgreSQL (127.0.0.1:5432, trust auth)."""

import concurrent.futures
import uuid

import psycopg2
import pytest
from sqlalchemy import create_engine, text

from tests.gateway_helpers import gateway

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture()
def database_url():
    name = f"helpline_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_web_channel_on_postgresql_answers_once_per_message(assistant, tmp_path, database_url):
    sender = "pgworker01234567890"
    with gateway(assistant, tmp_path, database_url=database_url) as client:
        def post(_):
            return client.post("/webhooks/web", json={"sender": sender, "message_id": "pg-1", "text": "年假有几天"}).json()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(post, range(4)))
        other = client.post("/webhooks/web", json={"sender": sender, "message_id": "pg-2", "text": "nghi om co luong ko"}).json()
    assert sum(bool(r["replies"]) for r in results) == 1
    assert other["replies"] == [assistant.render("utter_faq_sick_leave", "vi")]
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from messages where direction='in'")).scalar() == 2
        assert connection.execute(text("select count(*) from outbox where status='sent'")).scalar() == 2
        assert connection.execute(text("select version_num from alembic_version")).scalar() == "0003"
    engine.dispose()
