"""Every lint rule: an unsafe statement it flags and a safe look-alike it leaves alone, per dialect."""
from __future__ import annotations

import pytest

from dbrunbook.lint import LintConfig, lint_sql, registry

KNOWN = {("t", "c"): {"type": "varchar(10)", "not_null": False},
         ("t", "n"): {"type": "int", "not_null": False},
         ("t", "e"): {"type": "enum('a','b','c')", "not_null": False}}

# code, dialect, unsafe SQL, safe look-alike SQL, (unsafe downgrade, safe downgrade) for RB rules
CASES = [
    ("LK001", "postgresql", "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid()",
     "ALTER TABLE t ADD COLUMN u timestamptz DEFAULT now()", None),
    ("LK001", "postgresql", "ALTER TABLE t ADD COLUMN id2 bigserial", "ALTER TABLE t ADD COLUMN id2 bigint", None),
    ("MF001", "postgresql", "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
     "ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT ck; "
     "ALTER TABLE t ALTER COLUMN c SET NOT NULL", None),
    ("MF001", "mariadb", "ALTER TABLE t MODIFY c VARCHAR(10) NOT NULL", "ALTER TABLE t MODIFY c VARCHAR(10) NULL",
     None),
    ("MF002", "postgresql", "ALTER TABLE t ADD COLUMN d INTEGER NOT NULL",
     "ALTER TABLE t ADD COLUMN d INTEGER DEFAULT 0 NOT NULL", None),
    ("MF002", "mariadb", "ALTER TABLE t ADD COLUMN d INTEGER NOT NULL",
     "ALTER TABLE t ADD COLUMN d INTEGER NOT NULL DEFAULT 0", None),
    ("MF002", "sqlite", "ALTER TABLE t ADD COLUMN d INTEGER NOT NULL",
     "ALTER TABLE t ADD COLUMN d INTEGER DEFAULT 0 NOT NULL", None),
    ("LK002", "postgresql", "ALTER TABLE t ALTER COLUMN c TYPE integer USING c::integer",
     "ALTER TABLE t ALTER COLUMN c TYPE varchar(20)", None),
    ("LK003", "postgresql", "CREATE INDEX ix ON t (c)", "CREATE INDEX CONCURRENTLY ix ON t (c)", None),
    ("LK004", "postgresql", "DROP INDEX ix", "DROP INDEX CONCURRENTLY ix", None),
    ("TX001", "postgresql", "BEGIN; CREATE INDEX CONCURRENTLY ix ON t (c); COMMIT",
     "CREATE INDEX CONCURRENTLY ix ON t (c)", None),
    ("TX002", "postgresql", "BEGIN; ALTER TABLE t ADD CONSTRAINT ck CHECK (n > 0) NOT VALID; "
     "ALTER TABLE t VALIDATE CONSTRAINT ck; COMMIT",
     "BEGIN; ALTER TABLE t ADD CONSTRAINT ck CHECK (n > 0) NOT VALID; COMMIT; ALTER TABLE t VALIDATE CONSTRAINT ck",
     None),
    ("LK005", "postgresql", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id)",
     "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id) NOT VALID", None),
    ("LK006", "postgresql", "ALTER TABLE t ADD CONSTRAINT ck CHECK (n > 0)",
     "ALTER TABLE t ADD CONSTRAINT ck CHECK (n > 0) NOT VALID", None),
    ("LK007", "postgresql", "ALTER TABLE t ADD CONSTRAINT uq UNIQUE (c)",
     "ALTER TABLE t ADD CONSTRAINT uq UNIQUE USING INDEX uq", None),
    ("DS001", "postgresql", "DROP TABLE t", "DROP VIEW t", None),
    ("DS001", "sqlite", "DROP TABLE t",
     "CREATE TABLE _alembic_tmp_t (id INTEGER); INSERT INTO _alembic_tmp_t (id) SELECT t.id FROM t; "
     "DROP TABLE t; ALTER TABLE _alembic_tmp_t RENAME TO t", None),
    ("DS002", "postgresql", "ALTER TABLE t DROP COLUMN c", "ALTER TABLE t DROP CONSTRAINT c", None),
    ("DS002", "mariadb", "ALTER TABLE t DROP COLUMN c", "ALTER TABLE t DROP INDEX c", None),
    ("DS002", "sqlite", "CREATE TABLE _alembic_tmp_t (n INTEGER, e TEXT)",
     "CREATE TABLE _alembic_tmp_t (n INTEGER, e TEXT, c TEXT)", None),
    ("DS003", "postgresql", "TRUNCATE t", "DELETE FROM t WHERE n < 0", None),
    ("DS003", "mariadb", "TRUNCATE TABLE t", "DELETE FROM t WHERE n < 0", None),
    ("BC001", "postgresql", "ALTER TABLE t RENAME TO u", "ALTER INDEX ix RENAME TO ix2", None),
    ("BC002", "postgresql", "ALTER TABLE t RENAME COLUMN c TO d", "ALTER TABLE t ADD COLUMN d int", None),
    ("BC002", "mariadb", "ALTER TABLE t CHANGE c d VARCHAR(10)", "ALTER TABLE t CHANGE c c VARCHAR(10)", None),
    ("LK008", "postgresql", "ALTER TABLE t DROP CONSTRAINT x",
     "SET lock_timeout = '5s'; ALTER TABLE t DROP CONSTRAINT x", None),
    ("LK008", "mariadb", "ALTER TABLE t DROP INDEX x",
     "SET SESSION lock_wait_timeout = 5; ALTER TABLE t DROP INDEX x", None),
    ("LK009", "postgresql", "ALTER TABLE t DROP CONSTRAINT x",
     "SET statement_timeout = '15min'; ALTER TABLE t DROP CONSTRAINT x", None),
    ("LK009", "mariadb", "ALTER TABLE t DROP INDEX x",
     "SET SESSION max_statement_time = 900; ALTER TABLE t DROP INDEX x", None),
    ("ID001", "mariadb", "CREATE INDEX ix ON t (c)", "CREATE INDEX IF NOT EXISTS ix ON t (c)", None),
    ("ID001", "postgresql", "CREATE TABLE x (id int)", "BEGIN; CREATE TABLE x (id int); COMMIT", None),
    ("DS004", "postgresql", "ALTER TYPE s RENAME TO s_old; CREATE TYPE s AS ENUM ('a')", "ALTER TYPE s ADD VALUE 'd'",
     None),
    ("DS004", "mariadb", "ALTER TABLE t MODIFY e ENUM('a','b')", "ALTER TABLE t MODIFY e ENUM('a','b','c','d')", None),
    ("LK010", "mariadb", "ALTER TABLE t MODIFY n BIGINT", "ALTER TABLE t ADD COLUMN m BIGINT", None),
    # A rename by CHANGE keeps the old definition (INSTANT); with another type it copies (held-out scoring, s17).
    ("LK010", "mariadb", "ALTER TABLE t CHANGE c d INTEGER", "ALTER TABLE t CHANGE c d VARCHAR(10)", None),
    ("LK010", "mariadb", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (n) REFERENCES p (id)",
     "ALTER TABLE t MODIFY n BIGINT, ALGORITHM=INPLACE, LOCK=NONE", None),
    ("LK011", "sqlite", "CREATE TABLE _alembic_tmp_t (id INTEGER)", "ALTER TABLE t ADD COLUMN d INTEGER", None),
    ("RB001", "postgresql", "ALTER TABLE t ADD COLUMN d int", "ALTER TABLE t ADD COLUMN d int",
     ("", "ALTER TABLE t DROP COLUMN d")),
    ("RB002", "mariadb", "ALTER TABLE t ADD COLUMN d int; CREATE INDEX ix ON t (d)",
     "ALTER TABLE t ADD COLUMN d int; CREATE INDEX ix ON t (d)",
     ("DROP INDEX ix ON t", "DROP INDEX ix ON t; ALTER TABLE t DROP COLUMN d")),
    ("RB003", "postgresql", "ALTER TABLE t DROP COLUMN c", "ALTER TABLE t ADD COLUMN c text",
     ("ALTER TABLE t ADD COLUMN c text", "ALTER TABLE t DROP COLUMN c")),
    ("RB003", "sqlite", "ALTER TABLE t DROP COLUMN c", "ALTER TABLE t ADD COLUMN c text",
     ("ALTER TABLE t ADD COLUMN c text", "ALTER TABLE t DROP COLUMN c")),
    # PostgreSQL forms sqlglot left opaque, read with pglast
    ("LK001", "postgresql", "ALTER TABLE t ADD COLUMN foo boolean DEFAULT random() > 0.5",
     "ALTER TABLE t ADD COLUMN foo boolean DEFAULT false", None),
    ("LK001", "postgresql", "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
     "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT statement_timestamp()", None),
    ("LK005", "postgresql", 'ALTER TABLE t ADD COLUMN u int REFERENCES "user" (id)',
     'ALTER TABLE t ADD COLUMN u int; ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES "user" (id) NOT VALID',
     None),
    ("LK007", "postgresql", "ALTER TABLE t ADD COLUMN b text UNIQUE", "ALTER TABLE t ADD COLUMN b text", None),
    ("LK007", "postgresql", "ALTER TABLE t ADD COLUMN id2 SERIAL PRIMARY KEY",
     "CREATE TABLE t2 (id SERIAL PRIMARY KEY)", None),
    ("LK008", "postgresql", "SET foo.lock_timeout = '1s'; ALTER TABLE t DROP CONSTRAINT x",
     "SET LOCAL lock_timeout = '1s'; ALTER TABLE t DROP CONSTRAINT x", None),
    ("MF001", "postgresql", "ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL) NOT VALID; "
     "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
     "ALTER TABLE t ADD CONSTRAINT ck CHECK (n > 0 AND c IS NOT NULL); ALTER TABLE t ALTER COLUMN c SET NOT NULL",
     None),
    ("TX001", "postgresql", "BEGIN; REINDEX INDEX CONCURRENTLY ix; COMMIT", "REINDEX INDEX CONCURRENTLY ix", None),
    ("LK012", "postgresql", "REINDEX TABLE t", "REINDEX TABLE CONCURRENTLY t", None),
    ("LK013", "postgresql", "ALTER TABLE t DETACH PARTITION t_2020",
     "ALTER TABLE t DETACH PARTITION t_2020 CONCURRENTLY", None),
    ("LK014", "postgresql", "VACUUM FULL t", "VACUUM (ANALYZE) t", None),
    ("LK014", "postgresql", "CLUSTER t USING ix", "ALTER TABLE t CLUSTER ON ix", None),
    ("LK015", "postgresql", "ALTER DOMAIN price ADD CONSTRAINT positive CHECK (VALUE > 0)",
     "ALTER DOMAIN price ADD CONSTRAINT positive CHECK (VALUE > 0) NOT VALID", None),
    ("LK016", "postgresql", "ALTER TABLE t ADD COLUMN twice int GENERATED ALWAYS AS (n * 2) STORED",
     "CREATE TABLE t2 (n int, twice int GENERATED ALWAYS AS (n * 2) STORED)", None),
    ("DS005", "postgresql", "DROP DATABASE app", "DROP SCHEMA app", None),
    ("DS005", "mariadb", "DROP DATABASE app", "DROP TABLE app", None),
    ("BC003", "postgresql", "ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy'", "ALTER TYPE mood ADD VALUE 'unhappy'",
     None),
    ("BC004", "postgresql", "ALTER SCHEMA app RENAME TO shop", "ALTER TABLE t RENAME CONSTRAINT a TO b", None),
    ("DT001", "postgresql", "ALTER TABLE t ADD COLUMN doc json", "ALTER TABLE t ADD COLUMN doc jsonb", None),
    ("LN004", "postgresql", "ALTER TABLE t SET LOGGED", "ALTER TABLE t SET (fillfactor = 70)", None),
    ("LN004", "mariadb", "OPTIMIZE TABLE t", "ANALYZE TABLE t", None),
    ("LN004", "sqlite", "VACUUM", "ANALYZE", None),
]


def _codes(sql, dialect, code, downgrade=None):
    report = lint_sql(sql, dialect, LintConfig(include=(code,)), source="case.sql", downgrade_sql=downgrade,
                      known_columns=KNOWN)
    return [f.code for f in report.findings]


@pytest.mark.parametrize("code,dialect,unsafe,safe,downgrades", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_rule_flags_unsafe_and_passes_safe_look_alike(code, dialect, unsafe, safe, downgrades):
    bad_down, good_down = downgrades or (None, None)
    assert _codes(unsafe, dialect, code, bad_down) == [code]
    assert _codes(safe, dialect, code, good_down) == []


#: Rules that judge what SQL cannot carry, each tested where it can be: code -> the test module.
ELSEWHERE = {"LN006": "tests/test_lint_offline.py"}  # a revision's code that needs a database to render


def test_every_rule_has_cases_on_each_of_its_dialects():
    covered = {(code, dialect) for code, dialect, *_ in CASES}
    for rule in registry:
        if rule.code in ELSEWHERE:
            continue
        assert any(code == rule.code for code, _ in covered), f"{rule.code} has no case"
        missing = [d for d in rule.dialects if (rule.code, d) not in covered and d != "mysql"]
        assert not missing, f"{rule.code} lacks cases on {missing}"


def test_codes_are_unique_and_documented():
    rules = list(registry)
    assert len({r.code for r in rules}) == len(rules) >= 25
    for rule in rules:
        assert rule.summary and rule.why and rule.safe, rule.code
        assert rule.code[:2] in {"DS", "BC", "MF", "LK", "RB", "ID", "TX", "DT", "LN"}


def test_registering_a_code_twice_fails_at_import():
    with pytest.raises(ValueError, match="registered twice"):
        registry.rule("LK001", "again", "warn", safe="-")(registry["LK001"].check)


@pytest.mark.parametrize("dialect, severity", [("postgresql", "block"), ("sqlite", "block"), ("mariadb", "warn")])
def test_a_required_column_blocks_where_it_fails_and_warns_where_rows_get_zero_values(dialect, severity):
    # MariaDB, even in strict mode, fills the existing rows with the type's zero value instead of failing.
    [finding] = [f for f in lint_sql("ALTER TABLE t ADD COLUMN d INTEGER NOT NULL", dialect).findings
                 if f.code == "MF002"]
    assert finding.severity == severity
    assert ("zero value" in finding.message) == (dialect == "mariadb"), finding.message
