"""Orchestration over the database, git storage and (later) builders and backends. No HTTP here."""
