"""Alembic's environment for Studio: online migrations only, on the connection that
studio.db.init_db passes in ``config.attributes["connection"]`` (it holds the lock that
keeps simultaneous first starts from migrating at once). Without one, an engine is made
from the ``sqlalchemy.url`` option."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from studio import db  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things: later revisions copy-and-move tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = db.make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()
