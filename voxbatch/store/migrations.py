"""Recorded schema migrations: frozen SQL, applied once each, in order, inside a transaction.

Never edit a migration that has shipped: deployed databases already ran it. Change the models,
then append a new migration that brings an existing database to the same shape; the test
suite checks that a freshly migrated database matches the models.

SQL is kept per dialect (`Migration.sql["sqlite"]`) so that PostgreSQL statements can be added
next to the SQLite ones without touching the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from voxbatch.errors import DatabaseError

if TYPE_CHECKING:
    from voxbatch.store.db import Database

MIGRATIONS_TABLE = "migrations"


@dataclass(frozen=True)
class Migration:
    """One named schema step; `sql` maps a dialect name to its statements, run in order."""

    name: str
    sql: Mapping[str, Sequence[str]]


# Generated once from the models with CreateTable/CreateIndex for SQLite, then frozen.
m001_initial = Migration(
    name="m001_initial",
    sql={
        "sqlite": (
            """
            CREATE TABLE job (
                id INTEGER NOT NULL,
                content_sha256 VARCHAR(64) NOT NULL,
                duplicate_of INTEGER,
                source_path VARCHAR NOT NULL,
                source_name VARCHAR NOT NULL,
                inbox VARCHAR,
                size_bytes INTEGER NOT NULL,
                state VARCHAR(20) NOT NULL,
                stage VARCHAR(20),
                attempts INTEGER NOT NULL,
                lease_owner VARCHAR,
                lease_expires_at DATETIME,
                not_before DATETIME,
                error_class VARCHAR,
                error_message VARCHAR,
                audio_seconds FLOAT,
                language VARCHAR(16),
                output_dir VARCHAR,
                created_at DATETIME NOT NULL,
                updated_at DATETIME NOT NULL,
                started_at DATETIME,
                finished_at DATETIME,
                PRIMARY KEY (id),
                FOREIGN KEY (duplicate_of) REFERENCES job (id)
            )
            """,
            "CREATE INDEX ix_job_content_sha256 ON job (content_sha256)",
            "CREATE INDEX ix_job_created_at ON job (created_at)",
            "CREATE INDEX ix_job_inbox ON job (inbox)",
            "CREATE INDEX ix_job_state ON job (state)",
            # At most one job per content hash pays for a transcription; failed ones step aside.
            """
            CREATE UNIQUE INDEX ux_job_primary_hash ON job (content_sha256)
                WHERE duplicate_of IS NULL AND state != 'failed'
            """,
            """
            CREATE TABLE transcript (
                id INTEGER NOT NULL,
                job_id INTEGER NOT NULL,
                content_sha256 VARCHAR(64) NOT NULL,
                model VARCHAR NOT NULL,
                text VARCHAR NOT NULL,
                language VARCHAR(16),
                audio_seconds FLOAT,
                created_at DATETIME NOT NULL,
                PRIMARY KEY (id),
                FOREIGN KEY (job_id) REFERENCES job (id),
                UNIQUE (content_sha256)
            )
            """,
            "CREATE INDEX ix_transcript_job_id ON transcript (job_id)",
            """
            CREATE TABLE segment (
                id INTEGER NOT NULL,
                transcript_id INTEGER NOT NULL,
                idx INTEGER NOT NULL,
                part INTEGER NOT NULL,
                start FLOAT,
                "end" FLOAT,
                text VARCHAR NOT NULL,
                speaker VARCHAR,
                PRIMARY KEY (id),
                CONSTRAINT uq_segment_idx UNIQUE (transcript_id, idx),
                FOREIGN KEY (transcript_id) REFERENCES transcript (id)
            )
            """,
            "CREATE INDEX ix_segment_transcript_id ON segment (transcript_id)",
            """
            CREATE TABLE api_call (
                id INTEGER NOT NULL,
                job_id INTEGER,
                kind VARCHAR(8) NOT NULL,
                model VARCHAR NOT NULL,
                request_id VARCHAR,
                started_at DATETIME NOT NULL,
                finished_at DATETIME,
                outcome VARCHAR(40) NOT NULL,
                error_detail VARCHAR,
                audio_seconds FLOAT,
                input_tokens INTEGER,
                output_tokens INTEGER,
                characters INTEGER,
                cost_usd VARCHAR(40),
                price_basis VARCHAR,
                estimated BOOLEAN NOT NULL,
                PRIMARY KEY (id),
                FOREIGN KEY (job_id) REFERENCES job (id)
            )
            """,
            "CREATE INDEX ix_api_call_job_id ON api_call (job_id)",
            "CREATE INDEX ix_api_call_kind ON api_call (kind)",
            "CREATE INDEX ix_api_call_started_at ON api_call (started_at)",
            """
            CREATE TABLE event (
                id INTEGER NOT NULL,
                job_id INTEGER,
                path VARCHAR,
                at DATETIME NOT NULL,
                kind VARCHAR(40) NOT NULL,
                detail VARCHAR NOT NULL,
                PRIMARY KEY (id),
                FOREIGN KEY (job_id) REFERENCES job (id)
            )
            """,
            "CREATE INDEX ix_event_job_id ON event (job_id)",
            "CREATE INDEX ix_event_path ON event (path)",
            # Full-text index reading its text from `transcript` (external content): the
            # triggers are what keep it in step, so every write path stays covered.
            """
            CREATE VIRTUAL TABLE transcript_fts USING fts5(
                text,
                content='transcript',
                content_rowid='id',
                tokenize='unicode61 remove_diacritics 2'
            )
            """,
            """
            CREATE TRIGGER transcript_fts_insert AFTER INSERT ON transcript BEGIN
                INSERT INTO transcript_fts (rowid, text) VALUES (new.id, new.text);
            END
            """,
            """
            CREATE TRIGGER transcript_fts_delete AFTER DELETE ON transcript BEGIN
                INSERT INTO transcript_fts (transcript_fts, rowid, text)
                    VALUES ('delete', old.id, old.text);
            END
            """,
            """
            CREATE TRIGGER transcript_fts_update AFTER UPDATE ON transcript BEGIN
                INSERT INTO transcript_fts (transcript_fts, rowid, text)
                    VALUES ('delete', old.id, old.text);
                INSERT INTO transcript_fts (rowid, text) VALUES (new.id, new.text);
            END
            """,
        ),
    },
)

# The daemon: file lifecycle columns on job, and the table of running workers.
m002_daemon = Migration(
    name="m002_daemon",
    sql={
        "sqlite": (
            "ALTER TABLE job ADD COLUMN rel_path VARCHAR",
            "ALTER TABLE job ADD COLUMN work_path VARCHAR",
            "ALTER TABLE job ADD COLUMN move_from VARCHAR",
            "ALTER TABLE job ADD COLUMN move_to VARCHAR",
            "ALTER TABLE job ADD COLUMN move_sig VARCHAR",
            "ALTER TABLE job ADD COLUMN final_path VARCHAR",
            "ALTER TABLE job ADD COLUMN requeues INTEGER DEFAULT '0' NOT NULL",
            "ALTER TABLE job ADD COLUMN wait_reason VARCHAR",
            "ALTER TABLE job ADD COLUMN partial_text VARCHAR",
            """
            CREATE TABLE worker (
                owner VARCHAR NOT NULL,
                started_at DATETIME NOT NULL,
                heartbeat_at DATETIME NOT NULL,
                state VARCHAR(20) NOT NULL,
                provider VARCHAR(20) NOT NULL,
                detail VARCHAR NOT NULL,
                PRIMARY KEY (owner)
            )
            """,
        ),
    },
)

# Summaries (written and spoken) and pre-job cost estimates; self-contained so that it applies
# after any other migration.
m003_summaries = Migration(
    name="m003_summaries",
    sql={
        "sqlite": (
            """
            CREATE TABLE summary (
                id INTEGER NOT NULL,
                job_id INTEGER NOT NULL,
                content_sha256 VARCHAR(64) NOT NULL,
                recipe VARCHAR(64) NOT NULL,
                prompt VARCHAR NOT NULL,
                model VARCHAR NOT NULL,
                text VARCHAR NOT NULL,
                language VARCHAR(16),
                parts INTEGER NOT NULL,
                created_at DATETIME NOT NULL,
                speech_audio BLOB,
                speech_format VARCHAR(8),
                speech_voice VARCHAR,
                speech_model VARCHAR,
                speech_job_id INTEGER,
                PRIMARY KEY (id),
                CONSTRAINT uq_summary_recipe UNIQUE (content_sha256, recipe),
                FOREIGN KEY (job_id) REFERENCES job (id),
                FOREIGN KEY (speech_job_id) REFERENCES job (id)
            )
            """,
            "CREATE INDEX ix_summary_job_id ON summary (job_id)",
            "CREATE INDEX ix_summary_content_sha256 ON summary (content_sha256)",
            """
            CREATE TABLE cost_estimate (
                job_id INTEGER NOT NULL,
                estimated_usd VARCHAR(40) NOT NULL,
                audio_seconds FLOAT,
                basis VARCHAR NOT NULL,
                created_at DATETIME NOT NULL,
                PRIMARY KEY (job_id),
                FOREIGN KEY (job_id) REFERENCES job (id)
            )
            """,
            # Summaries are searched like transcripts (external content kept by triggers).
            """
            CREATE VIRTUAL TABLE summary_fts USING fts5(
                text,
                content='summary',
                content_rowid='id',
                tokenize='unicode61 remove_diacritics 2'
            )
            """,
            """
            CREATE TRIGGER summary_fts_insert AFTER INSERT ON summary BEGIN
                INSERT INTO summary_fts (rowid, text) VALUES (new.id, new.text);
            END
            """,
            """
            CREATE TRIGGER summary_fts_delete AFTER DELETE ON summary BEGIN
                INSERT INTO summary_fts (summary_fts, rowid, text)
                    VALUES ('delete', old.id, old.text);
            END
            """,
            """
            CREATE TRIGGER summary_fts_update AFTER UPDATE OF text ON summary BEGIN
                INSERT INTO summary_fts (summary_fts, rowid, text)
                    VALUES ('delete', old.id, old.text);
                INSERT INTO summary_fts (rowid, text) VALUES (new.id, new.text);
            END
            """,
        ),
    },
)

# The files each job wrote: `show` and `process` list them, and a later job of the same audio
# publishes over them rather than beside them (self-contained, like m003).
m004_output_files = Migration(
    name="m004_output_files",
    sql={
        "sqlite": (
            """
            CREATE TABLE output_file (
                id INTEGER NOT NULL,
                job_id INTEGER NOT NULL,
                path VARCHAR NOT NULL,
                written_at DATETIME NOT NULL,
                PRIMARY KEY (id),
                FOREIGN KEY (job_id) REFERENCES job (id)
            )
            """,
            "CREATE INDEX ix_output_file_job_id ON output_file (job_id)",
            "CREATE INDEX ix_output_file_path ON output_file (path)",
        ),
    },
)

# Long files in parts (issue 10): each part's span and sessions, and the segments of unfinished
# parts as they arrive, so that a part cut short resumes after its last one.
m005_parts = Migration(
    name="m005_parts",
    sql={
        "sqlite": (
            """
            CREATE TABLE part (
                id INTEGER NOT NULL,
                job_id INTEGER NOT NULL,
                idx INTEGER NOT NULL,
                start_s FLOAT NOT NULL,
                end_s FLOAT,
                state VARCHAR(20) NOT NULL,
                sessions INTEGER NOT NULL,
                call_id INTEGER,
                session_from_s FLOAT,
                live_text VARCHAR,
                text VARCHAR,
                language VARCHAR(16),
                updated_at DATETIME NOT NULL,
                PRIMARY KEY (id),
                CONSTRAINT uq_part_idx UNIQUE (job_id, idx),
                FOREIGN KEY (job_id) REFERENCES job (id),
                FOREIGN KEY (call_id) REFERENCES api_call (id)
            )
            """,
            "CREATE INDEX ix_part_job_id ON part (job_id)",
            """
            CREATE TABLE part_segment (
                id INTEGER NOT NULL,
                part_id INTEGER NOT NULL,
                start FLOAT NOT NULL,
                "end" FLOAT NOT NULL,
                text VARCHAR NOT NULL,
                speaker VARCHAR,
                PRIMARY KEY (id),
                FOREIGN KEY (part_id) REFERENCES part (id)
            )
            """,
            "CREATE INDEX ix_part_segment_part_id ON part_segment (part_id)",
        ),
    },
)

MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_daemon,
    m003_summaries,
    m004_output_files,
    m005_parts,
)


def run_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the migrations not yet recorded, each in its own write transaction.

    A migration and its bookkeeping row commit together or not at all. The applied check
    is repeated under the write lock, so two processes starting at once cannot both run a
    step. Returns the names applied now (empty when the database was up to date).
    """
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise DatabaseError(f"duplicate migration names in {names}")
    with db.write() as session:
        session.connection().exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " name VARCHAR NOT NULL PRIMARY KEY, applied_at VARCHAR NOT NULL)"
        )
    unknown = set(applied_migrations(db)) - set(names)
    if unknown:
        raise DatabaseError(
            f"database {db.url} has migrations this voxbatch does not know: {sorted(unknown)}",
            hint="it was created by a newer voxbatch; upgrade voxbatch",
        )
    done: list[str] = []
    for migration in migrations:
        with db.write() as session:
            conn = session.connection()
            if _is_applied(conn, migration.name):
                continue
            statements = migration.sql.get(conn.dialect.name)
            if statements is None:
                raise DatabaseError(
                    f"migration {migration.name} has no SQL for {conn.dialect.name}"
                )
            for statement in statements:
                conn.exec_driver_sql(statement)
            conn.execute(
                sa.text(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (:name, :at)"),
                {"name": migration.name, "at": datetime.now(UTC).isoformat()},
            )
        done.append(migration.name)
    return done


def pending_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Names of the migrations a database that has run some would run now: empty for a new
    database (no migrations table yet) and for one that is up to date."""
    with db.read() as session:
        conn = session.connection()
        if not sa.inspect(conn).has_table(MIGRATIONS_TABLE):
            return []
        applied = {row[0] for row in conn.exec_driver_sql(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    if not applied:
        return []
    return [m.name for m in migrations if m.name not in applied]


def applied_migrations(db: Database) -> list[str]:
    """Names of the migrations recorded in the database, in the order they were applied."""
    with db.read() as session:
        rows = session.connection().exec_driver_sql(
            f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_at, name"
        )
        return [row[0] for row in rows]


def _is_applied(conn: sa.Connection, name: str) -> bool:
    row = conn.execute(
        sa.text(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = :name"), {"name": name}
    ).first()
    return row is not None
