"""assets: index on (ip_version, ip_hi, ip_lo) for claim overlap checks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 12:20:00
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.create_index('ix_assets_net', ['ip_version', 'ip_hi', 'ip_lo'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.drop_index('ix_assets_net')
