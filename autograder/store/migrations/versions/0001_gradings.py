"""The gradings table: one row per (assignment, student, submission sha256, grader version).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gradings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("assignment", sa.String(64), nullable=False),
        sa.Column("student_id", sa.String(64), nullable=False),
        sa.Column("submission_sha256", sa.String(80), nullable=False),
        sa.Column("grader_version", sa.String(80), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("held_since", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.UniqueConstraint(
            "assignment", "student_id", "submission_sha256", "grader_version", name="one_grading"
        ),
    )
    op.create_index("ix_gradings_assignment", "gradings", ["assignment"])
    op.create_index("ix_gradings_student_id", "gradings", ["student_id"])
    op.create_index("ix_gradings_state", "gradings", ["state"])


def downgrade() -> None:
    op.drop_table("gradings")
