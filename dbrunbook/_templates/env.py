"""Alembic environment written by dbrunbook.

Online, it uses the connection dbrunbook hands over in ``config.attributes["connection"]``
when there is one (so a scratch copy is migrated, never the wrong database), else
``sqlalchemy.url``. Offline (``--sql``) it renders SQL for the URL's dialect.
"""
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = None  # set to your models' MetaData to use `alembic revision --autogenerate`
{target_metadata}

def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={{"paramstyle": "named"}})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {{}}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
