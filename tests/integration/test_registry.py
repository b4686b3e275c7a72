"""The schema registry role as a black box: our binary on its own port and its own fresh
`_schemas`-like topic on the real Kafka, checked with plain HTTP and with confluent-kafka's
SchemaRegistryClient (what third-party tools use)."""
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

CT = "application/vnd.schemaregistry.v1+json"
BROKERS = os.environ.get("EVENTSHOP_KAFKA_BROKERS", "127.0.0.1:9092")
BINARY = os.path.join(os.environ.get("ES_BUILD", "/work/main/build"), "schema-registry",
                      "eventshop-registry")


def record(name, fields, ns="test.registry"):
    return json.dumps({"type": "record", "name": name, "namespace": ns, "fields": fields})


V1 = record("Thing", [{"name": "id", "type": "string"}])
V2 = record("Thing", [{"name": "id", "type": "string"},
                      {"name": "note", "type": "string", "default": ""}])
BREAKS = record("Thing", [{"name": "id", "type": "string"}, {"name": "size", "type": "int"}])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One eventshop-registry process on a free port over a given topic."""

    def __init__(self, topic):
        self.topic = topic
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = dict(os.environ, EVENTSHOP_KAFKA_BROKERS=BROKERS, EVENTSHOP_REGISTRY_TOPIC=self.topic,
                   EVENTSHOP_REGISTRY_ADDR=f"127.0.0.1:{self.port}", EVENTSHOP_REGISTRY_THREADS="2")
        self.proc = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, "registry exited during start"
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("registry did not come up in 30 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0, "SIGTERM should stop the registry cleanly"

    def call(self, method, path, body=None, **kw):
        headers = {"Content-Type": CT} if body is not None else {}
        return requests.request(method, self.url + path, data=None if body is None else
                                json.dumps(body), headers=headers, timeout=15, **kw)


@pytest.fixture(scope="module")
def reg():
    if not os.path.exists(BINARY):
        pytest.fail(f"{BINARY} is not built")
    topic = f"_schemas-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BROKERS})
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                        config={"cleanup.policy": "compact"})])
    fut[topic].result(timeout=30)
    r = Registry(topic)
    r.start()
    yield r
    if r.proc.poll() is None:
        r.stop()
    admin.delete_topics([topic])  # our own throwaway topic only


@pytest.fixture
def subject():
    return f"test-{uuid.uuid4().hex[:8]}-value"


def register(reg, subject, schema):
    return reg.call("POST", f"/subjects/{subject}/versions", {"schema": schema})


def test_root_and_unknown_route(reg):
    r = reg.call("GET", "/")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["Content-Type"] == CT
    r = reg.call("GET", "/no/such/route")
    assert r.status_code == 404 and r.json()["error_code"] == 404


def test_register_same_schema_same_id_and_lookup(reg, subject):
    r = register(reg, subject, V1)
    assert r.status_code == 200, r.text
    sid = r.json()["id"]
    # the same schema, written differently: same id, no new version
    again = json.dumps(json.loads(V1), indent=2, sort_keys=True)
    assert register(reg, subject, again).json() == {"id": sid}
    assert reg.call("GET", f"/subjects/{subject}/versions").json() == [1]
    r = reg.call("POST", f"/subjects/{subject}", {"schema": again})
    assert r.status_code == 200
    assert r.json()["id"] == sid and r.json()["version"] == 1 and r.json()["subject"] == subject
    assert json.loads(r.json()["schema"]) == json.loads(V1)
    # another subject reuses the global id
    assert register(reg, subject + "-other", V1).json() == {"id": sid}
    r = reg.call("GET", f"/schemas/ids/{sid}")
    assert r.status_code == 200 and json.loads(r.json()["schema"]) == json.loads(V1)
    subs = {x["subject"] for x in reg.call("GET", f"/schemas/ids/{sid}/versions").json()}
    assert subs == {subject, subject + "-other"}


def test_versions_latest_and_subjects(reg, subject):
    id1 = register(reg, subject, V1).json()["id"]
    id2 = register(reg, subject, V2).json()["id"]
    assert id2 > id1
    assert reg.call("GET", f"/subjects/{subject}/versions").json() == [1, 2]
    latest = reg.call("GET", f"/subjects/{subject}/versions/latest").json()
    assert (latest["version"], latest["id"], latest["subject"]) == (2, id2, subject)
    one = reg.call("GET", f"/subjects/{subject}/versions/1").json()
    assert one["id"] == id1
    raw = reg.call("GET", f"/subjects/{subject}/versions/2/schema")
    assert raw.status_code == 200 and json.loads(raw.text) == json.loads(V2)
    assert subject in reg.call("GET", "/subjects").json()


def test_not_found_and_invalid(reg, subject):
    r = reg.call("GET", f"/subjects/{subject}/versions")
    assert r.status_code == 404 and r.json()["error_code"] == 40401
    register(reg, subject, V1)
    r = reg.call("GET", f"/subjects/{subject}/versions/7")
    assert r.status_code == 404 and r.json()["error_code"] == 40402
    r = reg.call("GET", f"/subjects/{subject}/versions/0")
    assert r.status_code == 422 and r.json()["error_code"] == 42202
    r = reg.call("GET", "/schemas/ids/987654")
    assert r.status_code == 404 and r.json()["error_code"] == 40403
    r = reg.call("POST", f"/subjects/{subject}", {"schema": V2})
    assert r.status_code == 404 and r.json()["error_code"] == 40403
    bad = record("Bad", [{"name": "x", "type": "int", "default": "nope"}])
    r = register(reg, subject, bad)
    assert r.status_code == 422 and r.json()["error_code"] == 42201
    assert "default" in r.json()["message"]
    r = register(reg, subject, '{"type": "record"')
    assert r.status_code == 422 and r.json()["error_code"] == 42201


def test_incompatible_is_409_with_reason(reg, subject):
    register(reg, subject, V1)
    r = register(reg, subject, BREAKS)
    assert r.status_code == 409 and r.json()["error_code"] == 409
    assert "'size' has no default" in r.json()["message"]
    r = reg.call("POST", f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
                 {"schema": BREAKS})
    assert r.status_code == 200 and r.json()["is_compatible"] is False
    assert any("size" in m for m in r.json()["messages"])
    r = reg.call("POST", f"/compatibility/subjects/{subject}/versions/latest", {"schema": V2})
    assert r.json() == {"is_compatible": True}


def test_config_levels(reg, subject):
    assert reg.call("GET", "/config").json() == {"compatibilityLevel": "BACKWARD"}
    r = reg.call("GET", f"/config/{subject}")
    assert r.status_code == 404 and r.json()["error_code"] == 40408
    r = reg.call("GET", f"/config/{subject}?defaultToGlobal=true")
    assert r.json() == {"compatibilityLevel": "BACKWARD"}
    r = reg.call("PUT", f"/config/{subject}", {"compatibility": "SIDEWAYS"})
    assert r.status_code == 422 and r.json()["error_code"] == 42203
    r = reg.call("PUT", f"/config/{subject}", {"compatibility": "NONE"})
    assert r.status_code == 200 and r.json() == {"compatibility": "NONE"}
    assert reg.call("GET", f"/config/{subject}").json() == {"compatibilityLevel": "NONE"}
    register(reg, subject, V1)
    assert register(reg, subject, BREAKS).status_code == 200  # NONE lets it through
    # FORWARD: the latest (BREAKS) must read V2 data, which lacks the required size
    reg.call("PUT", f"/config/{subject}", {"compatibility": "FORWARD"})
    assert register(reg, subject, V2).status_code == 409


def test_soft_delete(reg, subject):
    register(reg, subject, V1)
    register(reg, subject, V2)
    r = reg.call("DELETE", f"/subjects/{subject}")
    assert r.status_code == 200 and r.json() == [1, 2]
    assert reg.call("GET", f"/subjects/{subject}/versions").json()["error_code"] == 40401
    assert subject not in reg.call("GET", "/subjects").json()


def test_confluent_client(reg, subject):
    client = SchemaRegistryClient({"url": reg.url})
    sid = client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.register_schema(subject, Schema(V1, "AVRO")) == sid
    fetched = SchemaRegistryClient({"url": reg.url}).get_schema(sid)
    assert json.loads(fetched.schema_str) == json.loads(V1)
    reg_schema = client.lookup_schema(subject, Schema(V1, "AVRO"))
    assert reg_schema.schema_id == sid and reg_schema.version == 1
    assert client.get_latest_version(subject).schema_id == sid
    assert client.get_versions(subject) == [1]
    assert subject in client.get_subjects()
    assert client.test_compatibility(subject, Schema(V2, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(BREAKS, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(BREAKS, "AVRO"))
    assert e.value.http_status_code == 409
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    with pytest.raises(SchemaRegistryError) as e:
        client.get_latest_version(subject + "-missing")
    assert e.value.error_code == 40401


def test_restart_keeps_ids(reg, subject):
    id1 = register(reg, subject, V1).json()["id"]
    id2 = register(reg, subject, V2).json()["id"]
    reg.call("PUT", f"/config/{subject}", {"compatibility": "FULL_TRANSITIVE"})
    reg.stop()
    reg.start()
    assert register(reg, subject, V2).json() == {"id": id2}
    assert reg.call("GET", f"/subjects/{subject}/versions/1").json()["id"] == id1
    assert reg.call("GET", f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    # ids keep increasing after a restart
    new = record("Other", [{"name": "z", "type": "long"}])
    assert register(reg, subject + "-new", new).json()["id"] > id2
