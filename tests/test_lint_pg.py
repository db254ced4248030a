"""PostgreSQL SQL is read with PostgreSQL's own parser: nothing sqlglot left opaque is dropped unseen."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dbrunbook.lint import LintConfig, lint_sql, parse_sql

KNOWN = {("t", "c"): {"type": "varchar(10)", "not_null": False}, ("t", "n"): {"type": "integer", "not_null": False}}

# statement -> the action kinds it is read as (each once fell back to sqlglot's opaque Command)
READ_AS = [
    ("REINDEX TABLE t", ["reindex"]),
    ("VACUUM FULL t", ["vacuum"]),
    ("CLUSTER t USING ix", ["cluster"]),
    ("CLUSTER", ["cluster"]),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", ["lock_table"]),
    ("ALTER TABLE p DETACH PARTITION p_2020", ["detach_partition"]),
    ("ALTER TABLE t ENABLE ROW LEVEL SECURITY", ["row_security"]),
    ("ALTER TABLE t DISABLE ROW LEVEL SECURITY", ["row_security"]),
    ("ALTER DOMAIN d ADD CONSTRAINT pos CHECK (VALUE > 0)", ["alter_domain"]),
    ("CREATE DOMAIN d AS integer CHECK (VALUE > 0)", ["create_domain"]),
    ("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'", ["rename_enum_value"]),
    ("ALTER SCHEMA app RENAME TO shop", ["rename_schema"]),
    ("CREATE TEMP TABLE scratch (a int) ON COMMIT DROP", ["create_table"]),
    ('DROP INDEX "a", "b"', ["drop_index", "drop_index"]),
    ("DROP DATABASE app", ["drop_database"]),
    ("ALTER TABLE t ADD COLUMN b text UNIQUE", ["add_column", "add_constraint"]),
    ("DO $$ BEGIN PERFORM 1; PERFORM 2; END $$", ["other"]),
]


@pytest.mark.parametrize("sql,kinds", READ_AS, ids=[s for s, _ in READ_AS])
def test_each_form_sqlglot_left_opaque_is_read_into_actions(sql, kinds):
    (stmt,) = parse_sql(sql, "postgresql").statements
    assert [a.kind for a in stmt.actions] == kinds


def test_statements_split_on_the_servers_own_scanner_with_lines_and_silences():
    sql = ("SET lock_timeout = '5s';\n"
           "DO $$ BEGIN UPDATE t SET n = 1; COMMIT; END $$;\n"
           "-- dbrunbook-ignore: LK003 the table holds 40 rows\n"
           "CREATE INDEX ix ON t (c);\n"
           "SELECT 'a;b'")
    migration = parse_sql(sql, "postgresql")
    assert [(s.line, s.kind) for s in migration.statements] == [(1, "set"), (2, "other"), (4, "create_index"),
                                                                 (5, "other")]
    assert migration.statements[2].silenced == {"LK003": "the table holds 40 rows"}
    assert migration.statements[2].settings == {"lock_timeout": "5s"}


def test_drop_index_of_several_names_reports_each():
    report = lint_sql('DROP INDEX "a", "b"', "postgresql", LintConfig(include=("LK004",)))
    assert [f.object for f in report.findings] == ["a", "b"]


def test_a_custom_setting_named_like_lock_timeout_is_its_own_setting():
    (_, stmt) = parse_sql("SET foo.lock_timeout = '1s'; ALTER TABLE t DROP COLUMN c", "postgresql").statements
    assert stmt.settings == {"foo.lock_timeout": "1s"}


def test_set_not_null_says_why_it_scans_and_that_a_validated_check_spares_it():
    (finding,) = lint_sql("ALTER TABLE t ALTER COLUMN c SET NOT NULL", "postgresql", LintConfig(include=("MF001",)),
                          known_columns=KNOWN).findings
    assert "full-table scan under ACCESS EXCLUSIVE" in finding.message and "CHECK (c IS NOT NULL)" in finding.message
    assert "fails if any row is NULL" in finding.message
    proved = ("ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT ck; "
              "ALTER TABLE t ALTER COLUMN c SET NOT NULL")
    assert lint_sql(proved, "postgresql", LintConfig(include=("MF001",)), known_columns=KNOWN).findings == []
    other_column = proved.replace("COLUMN c SET", "COLUMN n SET")
    assert len(lint_sql(other_column, "postgresql", LintConfig(include=("MF001",)), known_columns=KNOWN).findings) == 1


def test_constraints_written_in_add_column_are_seen_as_if_written_apart():
    report = lint_sql('ALTER TABLE t ADD COLUMN b text UNIQUE, ADD COLUMN u int REFERENCES "user" (id), '
                      "ADD COLUMN id2 serial PRIMARY KEY", "postgresql",
                      LintConfig(include=("LK005", "LK007", "LK001", "MF002")), known_columns=KNOWN)
    assert sorted((f.code, f.message.split(" on ")[0]) for f in report.findings) == [
        ("LK001", "t.id2 gets a volatile default (nextval): the table is rewritten under ACCESS EXCLUSIVE"),
        ("LK005", "foreign key t_u_fkey"), ("LK007", "primary key t_pkey"), ("LK007", "unique t_b_key")]


def test_a_downgrade_dropping_the_column_undoes_its_inline_constraint():
    report = lint_sql("ALTER TABLE t ADD COLUMN b text UNIQUE", "postgresql", LintConfig(include=("RB002",)),
                      downgrade_sql="ALTER TABLE t DROP COLUMN b")
    assert report.findings == []


@pytest.mark.parametrize("dialect, undone", [("postgresql", True), ("mariadb", False), ("sqlite", False)])
def test_a_downgrade_dropping_the_column_undoes_its_separate_constraint_where_the_server_drops_it(dialect, undone):
    # Buildbot's 065: the foreign key is its own ALTER; PostgreSQL drops it with the column, MariaDB and SQLite
    # refuse to drop a column a foreign key is on, so the downgrade needs its own DROP CONSTRAINT there.
    up = ("ALTER TABLE buildsets ADD COLUMN rebuilt_buildid INTEGER; ALTER TABLE buildsets ADD CONSTRAINT "
          "rebuilt_buildid FOREIGN KEY (rebuilt_buildid) REFERENCES builds (id) ON DELETE SET NULL")
    report = lint_sql(up, dialect, LintConfig(include=("RB002",)),
                      downgrade_sql="ALTER TABLE buildsets DROP COLUMN rebuilt_buildid")
    assert [f.code for f in report.findings] == ([] if undone else ["RB002"]), report.findings


@pytest.mark.parametrize("dialect,sql,what", [
    ("postgresql", "ALTER TABLE t SET UNLOGGED", "ALTER TABLE t SetUnLogged"),
    ("postgresql", "REFRESH MATERIALIZED VIEW mv", "REFRESH MATERIALIZED VIEW"),
    ("mariadb", "OPTIMIZE TABLE t", "OPTIMIZE TABLE t"),
    ("sqlite", "VACUUM", "VACUUM"),
])
def test_a_statement_no_reader_understands_is_reported_not_dropped(dialect, sql, what):
    (finding,) = lint_sql(sql, dialect, LintConfig(include=("LN004",))).findings
    assert finding.severity == "warn" and what in finding.message


def test_a_statement_postgresql_cannot_parse_is_reported_and_the_others_are_still_read():
    report = lint_sql("ALTER TABLE t ADD COLUM x int; DROP TABLE t", "postgresql", LintConfig(include=("DS001",)))
    assert sorted((f.code, f.evidence["statement"]) for f in report.findings) == [("DS001", 2), ("LN003", 1)]


def test_alembic_offline_sql_is_understood_without_ln004():
    sql = ("BEGIN;\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
           "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));\n"
           "CREATE TYPE status AS ENUM ('a', 'b');\nCOMMENT ON COLUMN t.c IS 'x';\n"
           "INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;\n"
           "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';\nCOMMIT;")
    assert lint_sql(sql, "postgresql", LintConfig(include=("LN004",))).findings == []


def test_importing_lint_does_not_load_pglast():
    code = "import sys, dbrunbook.lint; assert 'pglast' not in sys.modules, 'pglast loaded'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
