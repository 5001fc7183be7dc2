"""Conversations, messages, outbox, channel state.

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
        "conversations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("owner", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_inbound_at", sa.DateTime),
        sa.Column("slow_down_noted_at", sa.DateTime),
        sa.UniqueConstraint("channel", "sender", name="uq_conversation_channel_sender"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("author", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("platform_message_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("topic", sa.String(32)),
        sa.Column("urgent_category", sa.String(32)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("channel", "platform_message_id", name="uq_message_channel_platform_id"),
    )
    op.create_index("ix_messages_conversation", "messages", ["conversation_id", "id"])
    op.create_index("ix_messages_status", "messages", ["direction", "status"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False, unique=True),
        sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.Column("sent_at", sa.DateTime),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "channel_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_state")
    op.drop_table("outbox")
    op.drop_table("messages")
    op.drop_table("conversations")
