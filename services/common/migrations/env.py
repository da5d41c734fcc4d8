from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
service = config.attributes["service"]

if connection.dialect.name == "postgresql":
    # One replica migrates at a time; the others wait and then find nothing to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"migrate:{service}"})

context.configure(
    connection=connection,
    target_metadata=config.attributes["metadata"],
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
