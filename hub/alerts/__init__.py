"""Consolidated alerts: rules as versioned data, a pure per-child engine, escalation and a store.

The pure modules (``rules``, ``calendar``, ``facts``, ``engine``, ``escalation``) import no
Kafka, FastAPI or SQLAlchemy; ``tables`` and ``store`` are the SQL side.
"""
