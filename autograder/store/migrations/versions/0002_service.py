"""The submission service: accounts (token hashes), uploads, uploads per day.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("assignment", sa.String(64), nullable=False),
        sa.Column("student_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("on_leaderboard", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("assignment", "student_id", "role", name="one_account"),
    )
    op.create_index("ix_accounts_student_id", "accounts", ["student_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("assignment", sa.String(64), nullable=False),
        sa.Column("student_id", sa.String(64), nullable=False),
        sa.Column("grading_id", sa.Integer(), sa.ForeignKey("gradings.id"), nullable=False),
        sa.Column("zip_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_uploads_assignment", "uploads", ["assignment"])
    op.create_index("ix_uploads_student_id", "uploads", ["student_id"])
    op.create_index("ix_uploads_grading_id", "uploads", ["grading_id"])
    op.create_index("ix_uploads_created", "uploads", ["created"])
    op.create_table(
        "upload_days",
        sa.Column("assignment", sa.String(64), primary_key=True),
        sa.Column("student_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_days")
    op.drop_table("uploads")
    op.drop_table("accounts")
