"""The book of finding codes: every code a stage can report, declared once, with its meaning and fix.

Rule codes (lint DS/BC/MF/LK/RB/ID/TX, design DV, data checks DC0xx, code impact CI) are declared
by their rule registries (:mod:`dbrunbook.core.rules`); :func:`all_codes` reads them from there. Every
other code a stage emits is declared here, once, as a module constant named by its code::

    from dbrunbook import codes
    codes.MG002.finding("the migration has no downgrade SQL", plan.head)

A second declaration of a code fails at import. ``docs/codes.md`` is :func:`render_markdown`
(``python -m dbrunbook.core.codes > docs/codes.md``); tests/test_codes.py checks that it is current,
that every code the library and the notebooks use is declared, and that every declared code is used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbrunbook.core.results import SEVERITIES, Finding


@dataclass(frozen=True)
class Code:
    """A finding code: its kebab-case name, default severity, what it means and what to do about it."""

    code: str
    name: str
    severity: str
    summary: str
    fix: str = ""
    #: The rule registry that declares it (lint, design, checks, code_impact); "" for codes declared here.
    registry: str = ""

    @property
    def family(self) -> str:
        """The family a code belongs to: its letters (DC for DC001 and DC100 alike)."""
        return self.code.rstrip("0123456789")

    def finding(self, message: str, object: str = "", evidence: dict[str, Any] | None = None,
                severity: str | None = None, fix: str | None = None) -> Finding:
        """A finding with this code, its default severity and fix unless given."""
        return Finding(self.code, severity or self.severity, message, object, evidence or {},
                       self.fix if fix is None else fix)


_DECLARED: dict[str, Code] = {}


def _is_kebab(name: str) -> bool:
    parts = name.split("-")
    return all(p and p.isascii() and (p.islower() or p.isdigit()) and p.isalnum() for p in parts)


def _declare(code: str, name: str, severity: str, summary: str, fix: str = "") -> Code:
    """Declare ``code`` once; a second declaration, a bad name or an unknown severity fails at import."""
    if code in _DECLARED:
        raise ValueError(f"finding code {code} declared twice ({_DECLARED[code].name} and {name})")
    if not (len(code) == 5 and code[:2].isascii() and code[:2].isupper() and code[2:].isdigit()):
        raise ValueError(f"finding code {code!r} is not two capital letters and three digits")
    if not _is_kebab(name):
        raise ValueError(f"finding code {code}: name {name!r} is not kebab-case")
    if severity not in SEVERITIES:
        raise ValueError(f"finding code {code}: severity must be one of {SEVERITIES}, not {severity!r}")
    _DECLARED[code] = declared = Code(code, name, severity, summary, fix)
    return declared


# -- 01 schema analysis (dbrunbook.stages.schema_analysis) -------------------------------------------------------------
SA001 = _declare("SA001", "destructive-change", "block",
                 "A change destroys data (a dropped table or column); block when it holds values, warn when empty "
                 "or when the values could not be counted.",
                 "copy the data elsewhere first, or stop using the column in code and drop it in a later release")
SA002 = _declare("SA002", "breaking-change", "warn",
                 "A change that breaks the code running now (a rename, a new required column, a dropped view, "
                 "sequence or enum).",
                 "add it nullable or with a server default, backfill, then tighten")
SA003 = _declare("SA003", "may-fail-on-rows", "warn",
                 "A change that may fail on existing rows (NOT NULL, UNIQUE, a foreign key, a CHECK, a type change).",
                 "check the data first (stage 05) or add the constraint NOT VALID and validate later")
SA004 = _declare("SA004", "breaks-dependents", "block",
                 "A change that breaks a view or an inbound foreign key of another table.",
                 "change or drop the dependent objects in the same migration")
SA005 = _declare("SA005", "rename-hint", "warn",
                 "A drop and an add that look like a rename; as drop + add the values are lost.",
                 "if it is a rename, declare it under renames in [tool.dbrunbook]")
SA006 = _declare("SA006", "migrations-do-not-make-the-models", "block",
                 "The pending revisions, applied to a schema-only copy, do not produce the schema the models "
                 "describe (what `alembic check` would report after the upgrade); each difference is listed.",
                 "apply would leave the database not matching the models the code runs with: add the missing "
                 "operations with `alembic revision --autogenerate` (review it), or edit the revision or the models "
                 "until they agree")
SA007 = _declare("SA007", "migrations-not-compared", "warn",
                 "The pending revisions could not be applied to a schema-only copy, so whether they produce the "
                 "models is unknown.",
                 "run the upgrade on an empty copy to see the error (stage 03 shows it too) and fix the revision")
SA008 = _declare("SA008", "change-not-analysed", "warn",
                 "No target models were given and the pending revisions fail on a schema-only copy, so the change "
                 "they make could not be analysed: nothing was checked, which is not a pass.",
                 "fix the revision that fails (stage 03's MG003 names it with the error), or give the target "
                 "models (--models) so the change is analysed from them")

# -- 03 migration (dbrunbook.stages.migration, dbrunbook.alembic_ops._shapes) ------------------------------------------
MG000 = _declare("MG000", "nothing-to-migrate", "info",
                 "The database is at head, and no revision is pending or generated from the models: there is "
                 "nothing to migrate (what autogenerate cannot see, such as CHECK constraints, is MG010).")
MG001 = _declare("MG001", "revisions-to-apply", "info", "The revisions the migration applies, in order.")
MG002 = _declare("MG002", "no-downgrade-sql", "warn", "The migration renders no downgrade SQL: it cannot be "
                 "rolled back.", "write downgrade() so the change can be rolled back")
MG003 = _declare("MG003", "upgrade-fails-on-schema", "block",
                 "The upgrade fails on an empty (schema-only) copy of the target, so its SQL cannot be rendered.",
                 "fix the revision so that it runs on the target's schema (the message is the database's error)")
MG004 = _declare("MG004", "operations-unreadable", "info",
                 "A revision's operations cannot be read without a database, so its rollback pairing was not "
                 "checked.", "review its downgrade() by hand; the round trip (--rollback-plan) runs it on a copy")
MG005 = _declare("MG005", "sql-captured", "info",
                 "A revision cannot be rendered offline (it inspects the database): the SQL shown is what it ran "
                 "on a schema-only copy.", "nothing to do; read the captured SQL as the statements it runs")
MG006 = _declare("MG006", "downgrade-fails-on-schema", "warn",
                 "The downgrade fails on an empty copy of the upgraded schema.",
                 "make downgrade() run on an empty copy of the upgraded schema")
MG007 = _declare("MG007", "env-py-fenced", "block",
                 "The project's env.py reached for a database other than the scratch copy it was given; the fence "
                 "refused it.",
                 "in env.py use config.attributes['connection'] when it is set, instead of making an engine "
                 "(README, 'Your env.py')")
MG008 = _declare("MG008", "several-heads", "warn",
                 "The scripts have several heads (warn), or the database is at several heads the plan merges "
                 "(info); the plan upgrades to all heads.",
                 "run `alembic upgrade heads` in production, as the plan does; merge branches that are one "
                 "history: `alembic merge heads`")
MG009 = _declare("MG009", "unnamed-constraint", "warn",
                 "Constraints without a name: named by dbrunbook in a generated revision, or left None in a "
                 "revision (warn when it drops one, info otherwise).",
                 "name each constraint in the revision and add a naming_convention to the models' MetaData")
MG010 = _declare("MG010", "plan-does-not-make-the-change", "warn",
                 "The planned revisions (the one generated with autogenerate included), applied to a schema-only "
                 "copy, do not make the change stage 01 found from the models: each part they leave out or make "
                 "differently is listed. Autogenerate does not emit CHECK constraints or enum value changes, "
                 "misses some server default and type changes, and makes a rename a drop and an add.",
                 "edit the revision: add what autogenerate does not emit, e.g. op.create_check_constraint(name, "
                 "table, condition) for a CHECK, op.execute(\"ALTER TYPE ... ADD VALUE ...\") for an enum value, "
                 "op.alter_column(table, column, server_default=...) or type_=... for a default or a type, "
                 "op.alter_column(table, old, new_column_name=new) for a rename; then plan again")

# -- lint itself (dbrunbook.lint) -----------------------------------------------------------------------------------
LN001 = _declare("LN001", "silence-without-reason", "warn",
                 "A dbrunbook-ignore comment gives no reason, so it silences nothing.",
                 "write the reason after the code: dbrunbook-ignore: CODE <why>")
LN002 = _declare("LN002", "revision-fails-on-schema", "block",
                 "A revision fails to run on a schema-only copy, so lint has no SQL to review.",
                 "fix the revision so it runs on this dialect")
LN003 = _declare("LN003", "unreadable", "warn",
                 "Lint cannot read a statement as the dialect's SQL: what it cannot read it does not check.",
                 "review the statement by hand")
LN005 = _declare("LN005", "operations-need-a-database", "info",
                 "A revision's operations cannot be read without a database (it inspects it, op.get_bind()), so "
                 "its rollback pairing is not checked; its SQL was captured by running it on a schema-only copy.",
                 "review its downgrade() by hand; the round trip (--rollback-plan) runs it on a copy")

# -- 04 rehearsal, 07 tests (dbrunbook.stages.dev_rehearsal and .probes, dbrunbook.stages.tests) ----------------------
RH000 = _declare("RH000", "upgrade-rehearsed", "info", "The upgrade applied on a copy, with its time and statements.")
RH001 = _declare("RH001", "upgrade-fails-on-copy", "block",
                 "The upgrade fails on a copy of the data, with the database's error and the failing statement.",
                 "fix the offending rows or change the migration; see stage 05 for the rows")
RH002 = _declare("RH002", "target-revision-changed", "block",
                 "The target's Alembic revision changed while the rehearsal ran.",
                 "find out what changed the target (another deploy, an env.py that migrates it) and rehearse again")
RH010 = _declare("RH010", "probes-rejected", "info",
                 "Constraint probes: the new constraints rejected the rows they must reject.")
RH011 = _declare("RH011", "probe-accepted", "warn",
                 "The migrated copy accepted a row that a new constraint must reject.",
                 "check the constraint is created and enforced")
RH012 = _declare("RH012", "probe-inconclusive", "info", "A constraint could not be probed, with the reason.")
RH020 = _declare("RH020", "tests-pass", "info", "The application's test command passed against the migrated copy.")
RH021 = _declare("RH021", "tests-fail", "block",
                 "The application's test command failed or timed out against the migrated copy.",
                 "read the output; the application does not work with the new schema")
RH022 = _declare("RH022", "tests-not-run", "warn",
                 "The test command was not run, because the upgrade fails on the copy.",
                 "make the upgrade pass first (stage 04 shows why it fails)")
RH023 = _declare("RH023", "no-test-command", "info", "No test command was given: the application's tests were not "
                 "run.", "pass the command as the test_cmd parameter, for example pytest -x")
QC001 = _declare("QC001", "n-plus-one", "warn", "A test ran one SELECT shape many times: an N+1 query suspect.",
                 "load the related rows with the first query: selectinload() or joinedload(), or one IN (...) query")

# -- 05 data checks beyond the DC0xx rules (dbrunbook.stages.data_checks.backfill, dbrunbook.stages.data_checks.profile)
DC100 = _declare("DC100", "backfill-plan", "info",
                 "A backfill plan for a column that needs values: rows, batches and estimated time.",
                 "run the batched backfill script before the migration (the finding's fix holds it)")
DC104 = _declare("DC104", "failure-unexplained", "warn",
                 "The upgrade fails on the data in stage 04 and no data check explains it: the revision's own "
                 "statements or code fail on rows no schema comparison describes.",
                 "read the failing statement in stage 04 and the revision's upgrade(); query the rows it reads")
DC101 = _declare("DC101", "table-not-there-yet", "info",
                 "A table a pending revision creates does not exist yet: nothing to profile.")
DC102 = _declare("DC102", "profiled-in-part", "warn", "A column could not be profiled fully, with the reason.",
                 "read the reason; the data checks do not depend on the profile")
DC103 = _declare("DC103", "backfill-not-planned", "warn", "The backfill of a column could not be planned, with "
                 "the reason.", "pass the fill expression (backfills={'table.column': <SQL>}) or backfill by hand")
# The data statements of the pending revisions (dbrunbook.stages.data_checks.statements)
DC110 = _declare("DC110", "data-statement", "info",
                 "An UPDATE or INSERT ... SELECT of the pending revisions, counted on the target by its own "
                 "predicate: how many rows it writes, with a sample (key and the columns involved).",
                 "check that the count and the sampled rows are the ones the revision means to change")
DC111 = _declare("DC111", "rows-deleted", "block",
                 "A DELETE of the pending revisions removes rows of the target: the data is lost, as with a drop.",
                 "narrow the WHERE to the rows meant, or keep a copy first in the migration "
                 "(CREATE TABLE <table>_deleted AS SELECT ... with the same WHERE)")
DC112 = _declare("DC112", "statement-without-where", "warn",
                 "An UPDATE or DELETE of the pending revisions has no WHERE on a non-empty table: it writes or "
                 "removes every row in one transaction.",
                 "add a WHERE naming the rows meant (WHERE <column> IS NULL for a backfill), or batch it (DC100)")
DC113 = _declare("DC113", "statement-not-analysed", "warn",
                 "A data statement of the pending revisions could not be analysed (bound parameters, a join, "
                 "syntax the parser does not read, a query that fails): named, with the reason.",
                 "review the statement by hand: count the rows it touches with its own WHERE")

# -- 08 performance (dbrunbook.stages.performance) ---------------------------------------------------------------------
PF000 = _declare("PF000", "plans-kept", "info", "No query plan lost an index and no query got slower.")
PF001 = _declare("PF001", "plan-lost-index", "warn",
                 "A table read through an index before the upgrade is read with a full scan after it.",
                 "keep the index (drop it in a later release once no query uses it), or recreate it")
PF002 = _declare("PF002", "query-slower", "warn",
                 "A query is more than slower_ratio times, and at least min_slower_ms, slower after the upgrade.",
                 "compare the two plans in plans.json; restore the index or rewrite the query")
PF003 = _declare("PF003", "query-costlier", "warn",
                 "The planner's cost of a query grew more than slower_ratio times after the upgrade.",
                 "compare the two plans in plans.json; restore the index or rewrite the query")
PF004 = _declare("PF004", "fk-without-index", "warn",
                 "A foreign key of a touched table has no index: joins and parent deletes scan the child table.",
                 "create the index the finding names (CONCURRENTLY on PostgreSQL)")
PF005 = _declare("PF005", "dropped-index-used", "warn",
                 "An index the change drops is used by query plans before the upgrade.",
                 "keep the index; drop it in a later release once no query plans use it")
PF006 = _declare("PF006", "measured-without-data", "warn",
                 "The upgrade fails on the data: plans were compared on a schema-only copy and timings skipped.",
                 "fix the data or the migration (stages 04 and 05), then run this stage again")
PF007 = _declare("PF007", "query-fails-after", "warn", "A query that ran before the upgrade fails after it.",
                 "update the query, and the code that runs it, for the new schema")
PF008 = _declare("PF008", "query-timed-out", "warn", "A query did not finish within timeout_seconds.",
                 "raise timeout_seconds, or look at the plan in plans.json")
PF009 = _declare("PF009", "n-plus-one-summary", "info",
                 "The N+1 suspects stage 07 counted (QC001), or why they were not measured.",
                 "run the application's tests with pytest in stage 07 (--test-cmd \"pytest\")")
PF010 = _declare("PF010", "backup-time", "info", "Backup size and duration (and restore time), or that they were "
                 "not measured.", "run with --rollback-plan or set measure_backup = True")
PF011 = _declare("PF011", "plan-gained-index", "info",
                 "A query reads a table through an index after the upgrade (a full scan before).")
PF012 = _declare("PF012", "not-compared", "warn",
                 "The upgrade fails even on an empty copy: performance was not compared.",
                 "make the migration run on the schema first (stage 04)")

# -- 09 staging volume (dbrunbook.stages.staging) ----------------------------------------------------------------------
VL001 = _declare("VL001", "predicted-time", "info", "The upgrade's predicted time at production size.")
VL002 = _declare("VL002", "fails-on-grown-copy", "block", "The upgrade fails on the grown copies.",
                 "see stage 04 for the failing statement; times are until the failure")
VL003 = _declare("VL003", "over-max-seconds", "warn", "The upgrade is predicted to take longer than max_seconds.",
                 "split the migration, build indexes concurrently, or backfill in batches")
VL004 = _declare("VL004", "table-not-grown", "warn",
                 "A table was not grown as asked; the prediction counts its rows as they are.",
                 "check the table's keys; a key the copy cannot vary keeps the table at its size")

# -- rollback plan (dbrunbook.stages.rollback_plan, dbrunbook.stages.rollback_plan.backup) -----------------------------
RT000 = _declare("RT000", "round-trip-lossless", "info",
                 "Upgrade, downgrade and upgrade again succeed; schema and data come back exactly.")
RT001 = _declare("RT001", "upgrade-fails", "block", "The upgrade fails on the copy: no rollback can be proven.",
                 "fix the migration so that this step succeeds; no rollback is proven until it does")
RT002 = _declare("RT002", "downgrade-fails", "block", "The downgrade fails on the upgraded copy.",
                 "fix the migration so that this step succeeds; no rollback is proven until it does")
RT003 = _declare("RT003", "schema-not-restored", "block", "The downgrade does not restore the schema.",
                 "make downgrade() recreate exactly what upgrade() changed")
RT004 = _declare("RT004", "data-not-restored", "block",
                 "Data does not come back after the downgrade (warn when the plan restores it from the backup).",
                 "keep the data in upgrade() (rename, do not drop) or plan a restore from backup")
RT005 = _declare("RT005", "reupgrade-fails", "block", "The second upgrade, after the downgrade, fails.",
                 "fix the migration so that this step succeeds; no rollback is proven until it does")
RT006 = _declare("RT006", "reupgrade-differs", "block", "Upgrading again gives another schema than the first "
                 "upgrade.", "make upgrade() depend only on the schema it starts from")
RT010 = _declare("RT010", "schema-round-trip", "info",
                 "The data stopped the upgrade, but on a schema-only copy the round trip succeeds.")
RT011 = _declare("RT011", "schema-round-trip-fails", "warn",
                 "Even on a schema-only copy the round trip fails (one finding per problem).",
                 "fix the downgrade and upgrade the message names, on the schema first")
BK000 = _declare("BK000", "backup-verified", "info", "The backup restores to the same data as the target.")
BK001 = _declare("BK001", "backup-differs", "block", "The restored backup differs from the target.",
                 "check that nothing writes to the database during the backup, then take it again")

# -- 10 production plan (dbrunbook.stages.production_plan): one code per checklist item, named like the item and
# named by it literally; a code is never renumbered (audit records keep their meaning), a new item takes the next.
_PP_FIX = "do what the finding's fix says, or waive the item with a reason (-p 'waive={\"item\": \"why\"}')"
PP001 = _declare("PP001", "schema-analysed", "block", "Checklist item not ticked: the live schema was not "
                 "analysed against the target models (stage 01).", _PP_FIX)
PP002 = _declare("PP002", "design-valid", "block", "Checklist item not ticked: the new design fails a design "
                 "rule (stage 02).", _PP_FIX)
PP003 = _declare("PP003", "migration-reviewed", "block", "Checklist item not ticked: the migration's review "
                 "blocks (stage 03).", _PP_FIX)
PP004 = _declare("PP004", "rollback-present", "block", "Checklist item not ticked: a revision has no downgrade "
                 "that undoes it (stage 03).", _PP_FIX)
PP005 = _declare("PP005", "rehearsed", "block", "Checklist item not ticked: the upgrade fails on a copy of the "
                 "data (stage 04).", _PP_FIX)
PP006 = _declare("PP006", "data-checks-pass", "block", "Checklist item not ticked: a data check blocks "
                 "(stage 05).", _PP_FIX)
PP007 = _declare("PP007", "code-impact-clear", "block", "Checklist item not ticked: code uses what the change "
                 "breaks (stage 06).", _PP_FIX)
PP008 = _declare("PP008", "tests-pass", "block", "Checklist item not ticked: the application's tests did not "
                 "pass on the migrated copy (stage 07).", _PP_FIX)
PP009 = _declare("PP009", "performance-ok", "block", "Checklist item not ticked: queries get slower or were not "
                 "timed on the data (stage 08).", _PP_FIX)
PP010 = _declare("PP010", "staging-within-window", "block", "Checklist item not ticked: the predicted duration "
                 "does not fit the change window (stage 09).", _PP_FIX)
PP011 = _declare("PP011", "rollback-proven", "block", "Checklist item not ticked: the rollback was not proven "
                 "on a copy (rollback plan).", _PP_FIX)
PP012 = _declare("PP012", "backup-verified", "block", "Checklist item not ticked: no backup was taken and "
                 "restored (rollback plan).", _PP_FIX)
PP013 = _declare("PP013", "team-approval", "block", "Checklist item not ticked: the plan needs approvals "
                 "(required_approvals in [tool.dbrunbook]) and apply's approved guard found too few.",
                 "reviewers run dbrunbook approve RUN --key THEIR_KEY on the finished plan run")
PP014 = _declare("PP014", "monitoring-configured", "block", "Checklist item not ticked: no notification target is "
                 "configured, or the test notification was not delivered.",
                 "set notify_command or notify_webhook in [tool.dbrunbook]; dbrunbook notify-test checks it")

# -- 11 guarded apply (dbrunbook.stages.guarded_apply) -----------------------------------------------------------------
AP000 = _declare("AP000", "no-plan-run", "info", "No plan run was given: nothing planned, nothing applied.")
AP001 = _declare("AP001", "manifest-verified", "block", "Guard failed: the plan run's files do not match its "
                 "manifest (warn when accepted).", "plan again with dbrunbook update")
AP002 = _declare("AP002", "plan-ready", "block", "Guard failed: the plan run has no stage 10 or an unticked "
                 "checklist item (warn when accepted).", "tick or waive the missing items in the plan run")
AP003 = _declare("AP003", "same-target", "block", "Guard failed: the plan was made for another database (warn "
                 "when accepted).", "apply the plan run made for this database, or plan this one")
AP004 = _declare("AP004", "revision-unchanged", "block", "Guard failed: the target's revision moved since it was "
                 "planned (warn when accepted).", "plan again with dbrunbook update")
AP005 = _declare("AP005", "no-schema-drift", "block", "Guard failed: the target's schema changed since it was "
                 "planned (warn when accepted).", "plan again with dbrunbook update")
AP006 = _declare("AP006", "scripts-present", "block", "Guard failed: the plan run's scripts do not lead through "
                 "its plan (warn when accepted).", "plan again with dbrunbook update")
AP007 = _declare("AP007", "project-history", "block", "Guard failed: the generated revision cannot be written to "
                 "the project's history (cannot be accepted).", "give alembic_config with a writable versions "
                 "directory, or plan again without --dry-run")
AP010 = _declare("AP010", "plan-only", "info", "Plan only (--dry-run): the revisions that would be applied.")
AP011 = _declare("AP011", "applied", "info", "The upgrade was applied, with its time and statement count.")
AP012 = _declare("AP012", "upgrade-failed", "block",
                 "The upgrade failed: the database's error, and what state the target is left in.",
                 "rolled back: fix the cause and plan again; otherwise restore the backup or repair by hand")
AP013 = _declare("AP013", "upgrade-aborted", "block", "The upgrade was aborted past abort_after_seconds.",
                 "rolled back: fix the cause and plan again; otherwise restore the backup or repair by hand")
AP014 = _declare("AP014", "blocked-sessions", "warn", "The migration blocked other sessions (how many, how long).",
                 "take the locks in smaller steps (see the LK lint rules), or apply in a quieter window")
AP015 = _declare("AP015", "no-revision", "info", "The plan has no revision to apply.")
AP016 = _declare("AP016", "outside-transaction", "warn", "Revisions run statements outside a transaction: they "
                 "are applied one by one, not atomically.", "keep non-transactional operations (CREATE INDEX "
                 "CONCURRENTLY) in a revision of their own")
AP017 = _declare("AP017", "revision-written", "warn", "The generated revision is written to the project's "
                 "history before the upgrade (info when only planned).", "commit it with the project")
AP018 = _declare("AP018", "apply-locked", "block",
                 "Another apply holds the target's apply lock (its run, user@host, pid, since when): refused, the "
                 "target untouched (warn on a dry run).",
                 "wait until the other apply has finished, then check the guards again")
AP019 = _declare("AP019", "sql-not-reviewed", "block",
                 "A statement the apply was about to run is not the reviewed SQL (03-migration/upgrade.sql): it did "
                 "not run; rolled back, or nothing ran.",
                 "plan again with dbrunbook update: the scripts (or what env.py runs) are not what was reviewed")
AP020 = _declare("AP020", "lock-retried", "warn",
                 "Applied after lock waits timed out and were retried: the attempts, and the sessions in the way.",
                 "apply when the sessions named are done, or shorten their transactions")
AP021 = _declare("AP021", "plan-not-signed", "block",
                 "The plan run bears no valid signature by a trusted key (trusted_keys in [tool.dbrunbook]).",
                 "sign the plan run (dbrunbook sign RUN --key KEY, or DBRUNBOOK_SIGNING_KEY during update) with a "
                 "key of the allowed-signers file, or accept on the record: --accept unsigned")
AP022 = _declare("AP022", "plan-not-approved", "block",
                 "The plan run has fewer approvals from distinct trusted keys than required_approvals.",
                 "reviewers run dbrunbook approve RUN --key THEIR_KEY; the author's own key does not count")
AP023 = _declare("AP023", "notification-failed", "warn",
                 "A notification of the apply (started, blocked, aborted, finished) was not delivered.",
                 "check notify_command / notify_webhook in [tool.dbrunbook] (dbrunbook notify-test)")

# -- 12 post-migration (dbrunbook.stages.post_migration, runbooks/apply/12-post-migration) -----------------------------
PV000 = _declare("PV000", "apply-record-incomplete", "warn", "No plan run, no stage 11 sidecar, or a part of "
                 "the apply record is missing: the checks that need it are skipped.",
                 "validate through dbrunbook apply PLAN_RUN, which records the apply")
PV001 = _declare("PV001", "schema-left-to-do", "block", "The live schema still differs from the models after "
                 "the migration.", "write a follow-up revision (dbrunbook update) or fix the models")
PV002 = _declare("PV002", "unexpected-revision", "block", "The database is not at the revision the plan expects.",
                 "find out which revision failed or was skipped; upgrade to the head or roll back")
PV003 = _declare("PV003", "data-changed", "block", "Data changed that the plan's changes do not explain.",
                 "restore the values from the backup, or roll back; then find the statement that changed them")
PV004 = _declare("PV004", "expected-difference", "info",
                 "A data difference the plan's changes explain, or renamed data that moved intact.")
PV005 = _declare("PV005", "invalid-index", "block", "An index is INVALID after a failed CREATE INDEX "
                 "CONCURRENTLY (PostgreSQL).", "drop it concurrently, fix the data, create it again")
PV006 = _declare("PV006", "constraint-not-valid", "warn", "A constraint is still NOT VALID: existing rows are "
                 "unchecked (PostgreSQL).", "ALTER TABLE ... VALIDATE CONSTRAINT (a SHARE UPDATE EXCLUSIVE lock)")
PV007 = _declare("PV007", "sequence-behind", "block", "A sequence would hand out a value its column already "
                 "holds (PostgreSQL).", "setval() the sequence to the column's maximum")
PV008 = _declare("PV008", "check-table", "block", "CHECK TABLE ... QUICK reports problems (MariaDB, MySQL).",
                 "rebuild the table (ALTER TABLE ... FORCE) or restore it from the backup")
PV009 = _declare("PV009", "orphan-rows", "block", "PRAGMA foreign_key_check finds rows whose parent is missing "
                 "(SQLite).", "delete the orphans or restore their parent rows")
PV010 = _declare("PV010", "quick-check", "block", "PRAGMA quick_check reports damage (SQLite).",
                 "stop writes and restore from the backup (or sqlite3 .recover into a new file)")
PV011 = _declare("PV011", "target-unchanged", "block", "After an apply that did not happen: the target changed "
                 "(block), or is proven unchanged (info; warn without a fingerprint).",
                 "compare with the backup and restore, or finish the change by hand")
PV012 = _declare("PV012", "apply-stopped-partway", "block", "The apply failed after statements committed (DDL "
                 "without transactions): the revision the target is at, which pending revisions were applied, "
                 "which failed and which did not run.", "remove what the failed revision left (PV014) so the target "
                 "is exactly at its revision, fix the cause and apply a new plan; or finish the failed revision by "
                 "hand and stamp it")
PV013 = _declare("PV013", "failed-revision-statements", "info", "The statements of the failed revision that ran "
                 "and committed, the one that failed, and those that did not run (from stage 11's record).")
PV014 = _declare("PV014", "left-behind", "block", "A schema object the failed revision left behind (the schema now "
                 "against the snapshot before the apply, less what the applied revisions made), with the SQL "
                 "that removes it.", "run the SQL given (in the order listed), then validate again")
PV015 = _declare("PV015", "revision-row-mismatch", "block", "The alembic_version row does not name the last "
                 "revision stage 11 recorded as applied.", "alembic stamp that revision (the command given)")
PV016 = _declare("PV016", "written-during-apply", "warn", "The application wrote to a table during the apply: rows "
                 "inserted above the keys it had before (info), or differences only its writes can explain, such as "
                 "more rows or changed values in columns the plan does not touch (warn).",
                 "make sure the application's writes account for it; if the migration changed the values, restore "
                 "them from the backup")

#: Families in the order of the stages that report them: title, and where the codes are documented at length.
FAMILIES: dict[str, tuple[str, str]] = {
    "SA": ("schema analysis (stage 01)", "schema.md"), "DV": ("design rules (stage 02)", "schema.md"),
    "MG": ("migration plan (stage 03)", "lint.md"), "DS": ("lint: destructive (stage 03, dbrunbook lint)", "rules.md"),
    "BC": ("lint: backward-incompatible", "rules.md"), "MF": ("lint: may fail on data", "rules.md"),
    "LK": ("lint: locking", "rules.md"), "RB": ("lint: rollback", "rules.md"),
    "ID": ("lint: idempotency and robustness", "rules.md"), "TX": ("lint: transactions", "rules.md"),
    "DT": ("lint: data types", "rules.md"),
    "LN": ("lint itself: silences, and statements it cannot read or understand", "lint.md"),
    "RH": ("rehearsal (stage 04) and the application's tests (stage 07)", "rehearsal.md"),
    "DC": ("data checks (stage 05): DC0xx checks, DC1xx backfill and profile", "data-checks.md"),
    "CI": ("code impact (stage 06)", "code-impact.md"), "QC": ("query counts (stage 07)", "rehearsal.md"),
    "PF": ("performance (stage 08)", "performance.md"), "VL": ("staging volume (stage 09)", "rehearsal.md"),
    "RT": ("rollback plan: the round trip", "rollback.md"), "BK": ("rollback plan: the backup", "rollback.md"),
    "PP": ("production plan (stage 10): one code per checklist item; block on evidence against the item, warn "
           "when it is waived or its evidence was not gathered", "production-plan.md"),
    "AP": ("guarded apply (stage 11)", "apply.md"), "PV": ("post-migration validation (stage 12)", "post-migration.md"),
}


def declared() -> list[Code]:
    """The codes declared in this module (every code that is not a rule's), sorted by code."""
    return sorted(_DECLARED.values(), key=lambda c: c.code)
