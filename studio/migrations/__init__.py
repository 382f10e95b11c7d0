"""Alembic migrations for the Studio database, shipped inside the package.

``studio.db.init_db`` runs them programmatically (no alembic.ini): it points an Alembic
``Config`` at this folder and hands env.py the connection it holds the migration lock on.
To write the next revision from a checkout::

    python -c "from studio.db import alembic_config; from alembic import command; \\
      command.revision(alembic_config('sqlite:///dev.db'), 'what changed', autogenerate=True)"

then review it (SQLite needs batch operations; keep plain SQLAlchemy types).
"""
