"""The tables, as SQLAlchemy Core objects: what queries are written against.

Times are integer microseconds since the Unix epoch (UTC): exact, portable and ordered on
both engines. JSON documents are stored as text, event bodies as the exact bytes sent.
The migrations in ``storage/migrations`` create this schema; a test compares the two.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# 64-bit ids on PostgreSQL; SQLite only autoincrements a column declared INTEGER.
Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("webhook_url", sa.Text),
    sa.Column("single_request", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("legal_name", sa.Text),
    sa.Column("inn", sa.String(12)),
    sa.Column("kpp", sa.String(9)),
    sa.Column("idempotency_mode", sa.String(16), nullable=False, server_default="bank131"),
    sa.Column("confirm_timeout_s", sa.Integer, nullable=False, server_default="14400"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # rails: the bank's fee on each payout, basis points of the amount plus fixed kopecks
    sa.Column("fee_bps", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fee_fixed", sa.BigInteger, nullable=False, server_default="0"),
    # webhooks: the Standard Webhooks secret (whsec_...) of a project that opted in, sealed
    # by the account vault (0009); ``webhook_secret`` held it in the clear before, and is
    # emptied when it is sealed
    sa.Column("webhook_secret", sa.Text),
    sa.Column("webhook_secret_sealed", sa.LargeBinary),
    sa.Column("webhook_secret_key_id", sa.String(32)),
    # sandbox: the test clock the project's time runs on (docs/sandbox.md); NULL: wall time
    sa.Column("test_clock", sa.BigInteger),
    sa.CheckConstraint("idempotency_mode IN ('bank131', 'replay')", name="ck_projects_idem"),
    sa.CheckConstraint("confirm_timeout_s > 0", name="ck_projects_confirm_timeout"),
    sa.Index("ix_projects_test_clock", "test_clock"),
)

# The public keys a project's calls are verified with (0015): one, or two while the partner
# rotates its key (``payout131 project key add|retire``). A retired key is kept, for the
# record; ``last_used_at`` is when a call last verified with the key (written at most every
# ``project_keys.USE_FLUSH_S`` seconds, off the request path).
project_keys = sa.Table(
    "project_keys",
    metadata,
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("fingerprint", sa.String(71), primary_key=True),
    sa.Column("public_key_pem", sa.Text, nullable=False),
    sa.Column("added_at", sa.BigInteger, nullable=False),
    sa.Column("retired_at", sa.BigInteger),
    sa.Column("last_used_at", sa.BigInteger),
)

# Every balance lives here. ``balance`` is what the entries sum to; ``held`` is the sum of
# active holds. The CHECK is the database's own refusal of a negative available balance:
# no code path, however concurrent, can commit one for a partner account.
ledger_accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id")),
    sa.Column("currency", sa.String(3), nullable=False, server_default="RUB"),
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("kind IN ('settlement', 'wallet', 'system')", name="ck_accounts_kind"),
    sa.CheckConstraint("held >= 0", name="ck_accounts_held"),
    sa.CheckConstraint(
        "kind = 'system' OR balance - held >= 0", name="ck_accounts_available_not_negative"
    ),
)

ledger_transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payout_n", sa.BigInteger),
    sa.Column("memo", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_ledger_transactions_payout", "payout_n"),  # a payout's story (0016)
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # Entries are written before their transaction's header row (whose insert trigger
    # checks that they balance), so this key is only checked at commit.
    sa.Column(
        "transaction_id",
        sa.BigInteger,
        sa.ForeignKey("ledger_transactions.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.CheckConstraint("amount <> 0", name="ck_entries_amount"),
    sa.Index("ix_entries_account", "account_id"),
    sa.Index("ix_entries_transaction", "transaction_id"),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
    sa.Column("payout_n", sa.BigInteger, nullable=False, unique=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger),
    sa.CheckConstraint("amount > 0", name="ck_holds_amount"),
    sa.CheckConstraint("status IN ('active', 'posted', 'released')", name="ck_holds_status"),
    sa.Index("ix_holds_account_status", "account_id", "status"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("n", Id, primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("api_version", sa.String(2), nullable=False),
    sa.Column("rko", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("submerchant", sa.Text),
    sa.Column("metadata", sa.Text),
    sa.Column("draft", sa.Text, nullable=False, server_default="{}"),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_description", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint(
        "status IN ('created', 'in_progress', 'accepted', 'cancelled', 'error')",
        name="ck_sessions_status",
    ),
    sa.Index("ix_sessions_project", "project_id"),
)

# ``work`` names the next background step a payout waits for (``check``, ``execute``,
# ``expire``) and ``work_at`` when it is due; a worker leases the row while it runs the step.
payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("n", Id, primary_key=True),
    sa.Column("session_n", sa.BigInteger, sa.ForeignKey("sessions.n"), nullable=False),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("participant_details", sa.Text),
    sa.Column("customer", sa.Text),
    sa.Column("metadata", sa.Text),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_description", sa.Text),
    sa.Column("work", sa.String(16)),
    sa.Column("work_at", sa.BigInteger),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("rail", sa.String(32)),
    sa.Column("rail_reference", sa.String(128)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger),
    sa.Column("fee", sa.BigInteger, nullable=False, server_default="0"),  # rails: held at start
    # what the rail told of the outcome (JSON; 0014): a card payout's transaction_info, a
    # verification's recipient names
    sa.Column("outcome", sa.Text),
    # a payout, or a customer verification (0014), which moves no money
    sa.Column("kind", sa.String(16), nullable=False, server_default="payout"),
    sa.CheckConstraint(
        "amount > 0 OR (kind = 'verification' AND amount = 0 AND fee = 0)",
        name="ck_payouts_amount",
    ),
    sa.CheckConstraint("kind IN ('payout', 'verification')", name="ck_payouts_kind"),
    sa.CheckConstraint(
        "status IN ('in_progress', 'pending', 'succeeded', 'failed')", name="ck_payouts_status"
    ),
    sa.UniqueConstraint("session_n", name="uq_payouts_session"),
    sa.Index("ix_payouts_work", "work_at"),
    sa.Index("ix_payouts_project_n", "project_id", "n"),  # a project's, newest first (0016)
    sa.Index(  # sandbox: what is due on a clock (its projects' payouts still at work)
        "ix_payouts_project_work",
        "project_id",
        "work_at",
        postgresql_where=sa.text("work IS NOT NULL"),
        sqlite_where=sa.text("work IS NOT NULL"),
    ),
    sa.Index("ix_payouts_rail_reference", "rail_reference", unique=True),  # rails: callbacks
    sa.Index(  # payout131 payouts list --error CODE (0016): failed payouts only
        "ix_payouts_error",
        "error_code",
        "n",
        postgresql_where=sa.text("error_code IS NOT NULL"),
        sqlite_where=sa.text("error_code IS NOT NULL"),
    ),
)

# The outbox: each row is one webhook, written in the transaction of the change it
# announces, holding the exact bytes that will be signed and sent.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("session_n", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger),
    # webhooks: when an operator last replayed the event (the retry round restarts then)
    sa.Column("replayed_at", sa.BigInteger),
    # tokens: the vault key sealing ``body`` (a tokenized account in full); NULL: plain
    sa.Column("body_key_id", sa.String(32)),
    sa.CheckConstraint(
        "status IN ('pending', 'failed', 'delivered', 'dead')", name="ck_events_status"
    ),
    sa.Index("ix_events_due", "status", "next_attempt_at"),
    sa.Index(  # the dispatcher's claim, in its order; waiting events only (0019)
        "ix_events_waiting",
        "next_attempt_at",
        "id",
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
        sqlite_where=sa.text("status IN ('pending', 'failed')"),
    ),
    sa.Index("ix_events_session", "session_n"),
    sa.Index("ix_events_project", "project_id", "status"),  # webhooks: operator listings
    sa.Index("ix_events_delivered", "status", "delivered_at"),  # purge
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(64), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=False),
    sa.Column("response_body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at"),  # purge
)

bik_directory = sa.Table(
    "bik_directory",
    metadata,
    sa.Column("bik", sa.String(9), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("english_name", sa.Text),
    sa.Column("correspondent_account", sa.String(20)),
    sa.Column("participant_type", sa.String(4), nullable=False),
    sa.Column("restricted", sa.Boolean, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False),
)

# The Faster Payments (SBP) member directory (PROTOCOL §9): empty until ``payout131 fps
# import``; the packaged snapshot is used meanwhile (``directory/fps.py``).
fps_members = sa.Table(
    "fps_members",
    metadata,
    sa.Column("id", sa.String(12), primary_key=True),
    sa.Column("ru_name", sa.Text, nullable=False),
    sa.Column("eng_name", sa.Text, nullable=False),
    sa.Column("bik", sa.String(9)),
    sa.Column("logo_url", sa.Text),
)


# --- webhooks: delivery attempts ------------------------------------------------------------
# One row per attempt to deliver an event, written when the attempt is claimed and completed
# when its outcome is known: a row with no ``duration_us`` is an attempt whose worker stopped
# between sending and recording (the event is delivered again once its lease expires).
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("duration_us", sa.BigInteger),
    sa.Column("http_status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("response", sa.Text),
    sa.CheckConstraint("attempt > 0", name="ck_webhook_attempts_attempt"),
    sa.Index("ix_webhook_attempts_event", "event_id"),
)

# ---------------------------------------------------------------------------------------
# Tokenized bank accounts (issue 4): public tokens for the widget, account tokens.
# ---------------------------------------------------------------------------------------

# A public token lets a browser use the tokenization widget once, for one project. Only its
# SHA-256 is stored: the token itself is a bearer credential.
public_tokens = sa.Table(
    "public_tokens",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger),
    sa.Index("ix_public_tokens_expires", "expires_at"),
)

# An account token stands for a recipient's bank account; the number itself is only here
# sealed by the vault (``account_sealed``, with the id of the key that sealed it).
account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("bik", sa.String(9), nullable=False),
    sa.Column("masked_account", sa.String(16), nullable=False),
    sa.Column("account_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_account_tokens_key", "key_id"),
    sa.Index("ix_account_tokens_project", "project_id"),
)

# Cards (PROTOCOL §9, 0014): a card number is kept only sealed by the account vault, under a
# token; payouts to a card name the token, answers show brand, BIN and last four digits.
card_tokens = sa.Table(
    "card_tokens",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("brand", sa.String(16), nullable=False),
    sa.Column("bin", sa.String(6), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("number_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_card_tokens_key", "key_id"),
    sa.Index("ix_card_tokens_project", "project_id"),
)


# ---------------------------------------------------------------------------------------
# Settlement rails (issue 5): refunds, and the simulator rail's own record of transfers.
# Columns on existing tables: projects.fee_bps, projects.fee_fixed, payouts.fee.
# A payout's rail submission is ``payouts.rail`` + ``payouts.rail_reference`` (0001),
# committed before the rail first hears of the payout.
# ---------------------------------------------------------------------------------------

# A payout the recipient's bank sent back (``rf_<n>``); at most one per payout.
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("n", Id, primary_key=True),
    sa.Column("payout_n", sa.BigInteger, sa.ForeignKey("payouts.n"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger),
    sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
    sa.UniqueConstraint("payout_n", name="uq_refunds_payout"),
)

# The simulator rail's books, as an external rail would keep them: one row per reference it
# received, ``submissions`` counting every submit call for it (1 when the bank sent it once).
simulator_transfers = sa.Table(
    "simulator_transfers",
    metadata,
    sa.Column("reference", sa.String(128), primary_key=True),
    sa.Column("payout_id", sa.String(32), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("bik", sa.String(9), nullable=False),
    sa.Column("account", sa.String(20)),
    sa.Column("scenario", sa.String(32), nullable=False),
    sa.Column("submissions", sa.Integer, nullable=False, server_default="1"),
    sa.Column("submitted_at", sa.BigInteger, nullable=False),
    sa.Column("settles_at", sa.BigInteger, nullable=False),
    # sandbox: the test clock the transfer's time runs on, and an outcome forced by hand
    sa.Column("test_clock", sa.BigInteger),
    sa.Column("forced", sa.String(16)),
    sa.Column("forced_code", sa.String(64)),
    # what the transfer pays to (0014): NULL an account, ``phone``, ``card`` (``account``
    # then holds the card masked: BIN and last four digits)
    sa.Column("kind", sa.String(8)),
    sa.Index("ix_simulator_transfers_payout", "payout_id"),
)


# ---------------------------------------------------------------------------------------
# Sandbox (issue 20): test clocks, time a partner can move (docs/sandbox.md).
# ---------------------------------------------------------------------------------------

# A clock's ``frozen_time`` moves only when advanced. While ``advancing``, ``advance_to`` is
# where it is going and ``runner`` the process moving it, while ``runner_until`` (wall time)
# has not passed; a clock whose runner died is taken over and finished.
test_clocks = sa.Table(
    "test_clocks",
    metadata,
    sa.Column("n", Id, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("frozen_time", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="ready"),
    sa.Column("advance_to", sa.BigInteger),
    sa.Column("failure", sa.Text),
    sa.Column("runner", sa.String(64)),
    sa.Column("runner_until", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("status IN ('ready', 'advancing', 'failed')", name="ck_test_clocks_status"),
)

# ---------------------------------------------------------------------------------------
# The operator console (docs/console.md): who may enter, their logins, what they did.
# ---------------------------------------------------------------------------------------

# An operator signs in to the console with a name and a password (``payout131 operator
# add``); only the password's Argon2id hash is kept. ``failures`` counts the failed sign-ins
# since the last good one; past the limit the operator is locked until ``locked_until``.
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", sa.BigInteger),
    sa.CheckConstraint("role IN ('viewer', 'admin')", name="ck_operators_role"),
)

# A console sign-in: the browser holds a random token in a cookie, the store its SHA-256
# (a stolen copy of the store opens no console), the form token every form must carry,
# and when it ends (signed out, or idle past ``console/logins.IDLE_S``).
console_logins = sa.Table(
    "console_logins",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column(
        "operator",
        sa.String(64),
        sa.ForeignKey("operators.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("seen_at", sa.BigInteger, nullable=False),
    sa.Column("ended_at", sa.BigInteger),
    sa.Index("ix_console_logins_operator", "operator"),
)

# What operators did, in the console or with the CLI: who, what, on what, the state before
# and after (JSON), and when. Rows are only ever added.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=False, server_default=""),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Column("address", sa.String(64)),
)

# The calls that touched a session (``payouts/call_record.py``), written with what they
# changed; kept as long as idempotency keys (``payout131 purge``).
session_calls = sa.Table(
    "session_calls",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("session_n", sa.BigInteger, nullable=False),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("method", sa.String(64), nullable=False),
    sa.Column("version", sa.String(4), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Index("ix_session_calls_session", "session_n"),
    sa.Index("ix_session_calls_at", "at"),  # purge (0019)
)
