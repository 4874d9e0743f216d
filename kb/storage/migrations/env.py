"""Alembic's entry point for kb: migrations run on the connection kb hands over (see
kb/storage/migrate.py); kb never runs Alembic against a URL of its own."""

from alembic import context

from kb.storage.migrate import own_schema

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite",
                  version_table_schema=own_schema(connection))
with context.begin_transaction():
    context.run_migrations()
