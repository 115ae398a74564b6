"""Older champions are marked ``retired``: only the serving version says ``champion``.

Revision ID: 0003_retire_old_champions
Revises: 0002_decide_and_trust
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_retire_old_champions"
down_revision = "0002_decide_and_trust"
branch_labels = None
depends_on = None

versions = sa.table("model_versions", sa.column("seq", sa.Integer), sa.column("status", sa.String))


def upgrade() -> None:
    champions = versions.c.status == "champion"
    newest = op.get_bind().execute(sa.select(sa.func.max(versions.c.seq)).where(champions)).scalar()
    if newest is not None:
        op.execute(
            versions.update().where(champions, versions.c.seq < newest).values(status="retired")
        )


def downgrade() -> None:
    op.execute(versions.update().where(versions.c.status == "retired").values(status="champion"))
