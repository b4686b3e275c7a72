"""An analyst's reader: the Python confluent-kafka client, with its SchemaRegistryClient and Avro
deserializer pointed at our registry, decodes every event on catalog.events (DESIGN.md §3)."""
import struct

from conftest import read_topic, wait_for

EVENT_TYPES = {"ProductListed", "ProductDetailsChanged", "ProductDelisted"}


def test_every_catalog_event_decodes_with_confluent_client(brokers, registry):
    # the suite's other tests write events; make sure there is something to read
    raw = wait_for(lambda: read_topic(brokers, registry, "catalog.events", decode=False),
                   timeout=120, what="events on catalog.events")
    decoded = read_topic(brokers, registry, "catalog.events")
    assert len(decoded) >= len(raw) > 0
    subjects = set(registry.get_subjects())
    for m in raw:
        magic, sid = struct.unpack(">bI", m["value"][:5])
        assert magic == 0
        schema = registry.get_schema(sid)
        assert schema.schema_type in (None, "AVRO")
    for m in decoded:
        v = m["value"]
        meta = v["metadata"]
        assert meta["aggregate_id"] == m["key"] == v["sku"]
        assert meta["aggregate_version"] >= 1
        assert len(meta["event_id"]) == 36 and len(meta["command_id"]) == 36
        assert "traceparent" in m["headers"]
    for t in EVENT_TYPES:
        # TopicRecordNameStrategy: <topic>-<record full name>
        assert f"catalog.events-eventshop.catalog.{t}" in subjects
