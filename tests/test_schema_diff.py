"""The diff finds each change kind in both directions on every dialect, with renames and dependencies."""
import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.errors import ConfigError
from dbrunbook.schema import assess, diff, snapshot, snapshot_metadata
from dbrunbook.schema._model import Column, ForeignKey, Snapshot, Table
from dbrunbook.stages import schema_analysis as analysis


def version(which, dialect):
    """Two versions of one schema that differ by one change of each kind."""
    a = which == "a"
    md = sa.MetaData()
    sa.Table("owners", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    sa.Table("items", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("size", sa.Integer if a else sa.BigInteger),
             sa.Column("label", sa.String(40), nullable=a, comment=None if a else "the label"),
             sa.Column("status", sa.String(10), server_default="new" if a else "open"),
             sa.Column("owner_id", sa.Integer, *([] if a else [sa.ForeignKey("owners.id", name="fk_items_owner")])),
             sa.Column("parent_id", sa.Integer, sa.ForeignKey("owners.id", name="fk_items_parent",
                                                              ondelete=None if a else "CASCADE")),
             sa.Column("code", sa.String(8), unique=not a),
             sa.Column("sku", sa.String(8), index=a),
             sa.Column("dropped" if a else "added", sa.Date if a else sa.Boolean),
             *([] if a else [sa.CheckConstraint("size >= 0", name="ck_items_size")]))
    sa.Table("pairs", md, sa.Column("x", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("y", sa.Integer, primary_key=not a, autoincrement=False, nullable=False))
    sa.Table("gone" if a else "fresh", md, sa.Column("gid" if a else "fid", sa.Integer, primary_key=True),
             sa.Column("when" if a else "amount", sa.DateTime if a else sa.Numeric(8, 2)))
    if dialect in ("postgresql", "mariadb"):  # PostgreSQL: a named type; MariaDB: the column's ENUM type
        sa.Table("moods", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("mood", sa.Enum(*(("sad", "ok") if a else ("sad", "ok", "happy")), name="mood")))
    if dialect == "postgresql":
        sa.Table("counters", md, sa.Column("id", sa.Integer, *([] if a else [sa.Identity()]), primary_key=True,
                                            autoincrement=False if a else True))
        if a:
            sa.Sequence("counter_seq", metadata=md)
    return md


VIEWS = {"a": {"v_items": "SELECT id, size FROM items", "v_gone": "SELECT id FROM owners"},
         "b": {"v_items": "SELECT id, label FROM items"}}


EXPECTED = {
    ("add_table", "fresh"), ("remove_table", "gone"),
    ("modify_type", "items.size"), ("modify_nullable", "items.label"), ("modify_default", "items.status"),
    ("add_fk", "fk_items_owner"), ("modify_fk", "fk_items_parent"), ("add_unique", "items(code)"),
    ("remove_index", "ix_items_sku"), ("remove_column", "items.dropped"), ("add_column", "items.added"),
    ("add_check", "ck_items_size"), ("modify_pk", "pairs.primary_key"),
    ("modify_view", "v_items"), ("remove_view", "v_gone"),
}
BY_DIALECT = {
    "postgresql": {("modify_comment", "items.label"), ("add_enum_value", "mood.happy"),
                   ("remove_sequence", "counter_seq"), ("modify_identity", "counters.id")},
    "mariadb": {("modify_comment", "items.label"), ("add_enum_value", "moods.mood.happy")},
    "sqlite": set(),
}
REVERSE = {"add": "remove", "remove": "add", "modify": "modify"}


def _snap(engine, md, views=None):
    md.create_all(engine)
    views = views or {}
    try:
        with engine.begin() as conn:
            for name, sql in views.items():
                conn.execute(sa.text(f"CREATE VIEW {name} AS {sql}"))
        return snapshot(engine)
    finally:
        with engine.begin() as conn:
            for name in views:
                conn.execute(sa.text(f"DROP VIEW IF EXISTS {name}"))
        md.drop_all(engine)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TYPE IF EXISTS mood"))


def _ops(changes):
    # Unnamed unique constraints get a generated name on some dialects: compare them by columns.
    return {(c.op, f"{c.table}({', '.join(c.after or c.before)})" if c.op.endswith("_unique") else c.object)
            for c in changes}


def test_every_change_kind_in_both_directions(db_url, dialect):
    engine = make_engine(db_url)
    try:
        a, b = (_snap(engine, version(v, dialect), VIEWS[v]) for v in "ab")
    finally:
        engine.dispose()
    expected = EXPECTED | BY_DIALECT[dialect]
    assert _ops(diff(a, b).changes) == expected
    reverse = {(REVERSE[op.split("_", 1)[0]] + "_" + op.split("_", 1)[1], obj) for op, obj in expected}
    assert _ops(diff(b, a).changes) == reverse
    assert diff(a, a).changes == [] and diff(b, b).changes == []


def _renamed(which):
    md = sa.MetaData()
    sa.Table("people", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("fullname" if which == "a" else "full_name", sa.String(100), nullable=False))
    sa.Table("customer" if which == "a" else "customers", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("email", sa.String(100)), sa.Column("since", sa.Date))
    return md


def test_rename_hints_and_confirmed_renames(db_url, dialect):
    engine = make_engine(db_url)
    try:
        a, b = _snap(engine, _renamed("a")), _snap(engine, _renamed("b"))
    finally:
        engine.dispose()
    result = diff(a, b)
    hints = {(h.what, h.old, h.new): h for h in result.hints}
    assert set(hints) == {("column", "fullname", "full_name"), ("table", "customer", "customers")}
    assert hints[("column", "fullname", "full_name")].confidence >= 0.8
    assert any("same type VARCHAR(100)" in e for e in hints[("column", "fullname", "full_name")].evidence)
    assert {c.op for c in result.changes} == {"remove_column", "add_column", "remove_table", "add_table"}
    assert [f.code for f in analysis.findings(assess(result), result.hints)].count("SA005") == 2

    confirmed = diff(a, b, {"people.fullname": "people.full_name", "customer": "customers"})
    assert [(c.op, c.object) for c in confirmed.changes] == [("rename_column", "people.full_name"),
                                                             ("rename_table", "customers")]
    assert confirmed.hints == []
    with pytest.raises(ConfigError, match="not a column"):
        diff(a, b, {"people.nope": "people.full_name"})


def test_dependencies_are_named_per_change(db_url, dialect):
    engine = make_engine(db_url)
    md = sa.MetaData()
    sa.Table("parent", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
             sa.Column("note", sa.String(40), index=True))
    sa.Table("child", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent"), index=True))
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE VIEW parent_names AS SELECT id, name FROM parent"))
        before = snapshot(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP VIEW parent_names"))
    finally:
        md.drop_all(engine)
        engine.dispose()
    assert before.views["parent_names"].tables == ["parent"]
    after = type(before).from_json(before.to_json())
    after.views = {}
    del after.tables["parent"].columns[1]  # name
    del after.tables["parent"].columns[1]  # note, with its index
    after.tables["parent"].indexes = []
    after.tables["parent"].columns[0].type = "BIGINT"
    changes = {(c.op, c.object): c for c in assess(diff(before, after))}
    name_deps = {(d["type"], d["name"], d["breaks"]) for d in changes[("remove_column", "parent.name")].dependencies}
    assert ("view", "parent_names", True) in name_deps
    note_deps = {(d["type"], d["name"]) for d in changes[("remove_column", "parent.note")].dependencies}
    assert ("index", "ix_parent_note") in note_deps
    id_deps = {(d["type"], d["name"], d["table"]) for d in changes[("modify_type", "parent.id")].dependencies}
    assert ("foreign_key", "fk_child_parent", "child") in id_deps
    found = analysis.findings(list(changes.values()))
    assert any(f.code == "SA004" and "parent_names" in f.message for f in found)
    assert any(f.code == "SA004" and "fk_child_parent" in f.message for f in found)


@pytest.mark.parametrize(("old", "new", "widening"), [
    ("TEXT", "LONGTEXT", True), ("VARCHAR(40)", "VARCHAR(255)", True), ("VARCHAR(255)", "TEXT", True),
    ("INTEGER", "BIGINT", True), ("VARCHAR(255)", "VARCHAR(40)", False), ("LONGTEXT", "TEXT", False),
    ("BIGINT", "INTEGER", False), ("VARCHAR(40)", "INTEGER", False), ("TEXT", "VARCHAR(255)", False),
    ("VARCHAR(255)", "TINYTEXT", False), ("NUMERIC(8,2)", "NUMERIC(10,2)", False)])
def test_a_widening_type_change_cannot_fail_on_rows(old, new, widening):
    # Dagster's f495c27d5019 and 29b539ebc72a (MySQL): TEXT -> LONGTEXT, which no existing row can make fail.
    before, after = (Snapshot("mariadb", "x", {"t": Table("t", [Column("id", "INTEGER"), Column("c", type_)], ["id"],
                                                          rows=200)}) for type_ in (old, new))
    [change] = assess(diff(before, after))
    assert change.op == "modify_type"
    expected = ("locking", ["locking"]) if widening else ("may-fail", ["may-fail", "locking"])
    assert (change.kind, change.classes) == expected
    codes = [f.code for f in analysis.findings([change])]
    assert ("SA003" in codes) is not widening


@pytest.mark.parametrize(("old", "new", "may_fail"), [
    ("NUMERIC(10,2)", "INTEGER", False), ("NUMERIC(12, 2)", "INTEGER", True), ("NUMERIC(12,2)", "BIGINT", False),
    ("NUMERIC(6,0)", "SMALLINT", True), ("DECIMAL(4)", "SMALLINT", False)])
def test_a_numeric_that_fits_the_integer_once_rounded_cannot_fail(old, new, may_fail):
    # NUMERIC(10,2) holds at most 99,999,999.99: as INTEGER it rounds (stage 05 counts that), it cannot overflow.
    before, after = (Snapshot("postgresql", "x", {"t": Table("t", [Column("id", "INTEGER"), Column("c", type_)],
                                                             ["id"], rows=200)}) for type_ in (old, new))
    [change] = assess(diff(before, after))
    assert ("may-fail" in change.classes) is may_fail


@pytest.mark.parametrize(("dialect", "may_fail"), [("postgresql", True), ("mariadb", True), ("sqlite", False)])
def test_a_type_change_may_fail_only_where_a_cast_can_fail(dialect, may_fail):
    # SQLite's batch copy casts every value (what it changes, stage 05 counts): no row can make it fail.
    before, after = (Snapshot(dialect, "x", {"t": Table("t", [Column("id", "INTEGER"), Column("c", type_)], ["id"],
                                                        rows=200)}) for type_ in ("VARCHAR(40)", "INTEGER"))
    [change] = assess(diff(before, after))
    assert ("may-fail" in change.classes) is may_fail
    assert ("SA003" in [f.code for f in analysis.findings([change])]) is may_fail


@pytest.mark.parametrize(("dialect", "may_fail"), [("postgresql", True), ("sqlite", True), ("mariadb", False)])
def test_a_required_column_may_fail_only_where_the_rows_get_no_value(dialect, may_fail):
    # MariaDB, strict mode or not, gives the existing rows the type's zero value; old INSERTs still break.
    before = Snapshot(dialect, "x", {"t": Table("t", [Column("id", "INTEGER")], ["id"], rows=200)})
    after = Snapshot(dialect, "x", {"t": Table("t", [Column("id", "INTEGER"), Column("flag", "BOOLEAN",
                                                                                      nullable=False)], ["id"])})
    [change] = assess(diff(before, after))
    assert change.op == "add_column" and "breaking" in change.classes
    assert ("may-fail" in change.classes) is may_fail


@pytest.mark.parametrize(("default", "may_fail"), [(None, False), ("7", True)])
def test_a_foreign_key_on_a_column_added_empty_cannot_fail(default, may_fail):
    # Buildbot's 065 adds buildsets.rebuilt_buildid with its key: every row holds NULL there. With a default, every
    # row gets a value the key must find.
    parent = Table("builds", [Column("id", "INTEGER")], ["id"], rows=50)
    before = Snapshot("postgresql", "x", {"builds": parent, "t": Table("t", [Column("id", "INTEGER")], ["id"],
                                                                         rows=200)})
    after = Snapshot("postgresql", "x", {"builds": parent, "t": Table(
        "t", [Column("id", "INTEGER"), Column("build_id", "INTEGER", default=default)], ["id"],
        foreign_keys=[ForeignKey("fk_t_build", ["build_id"], "builds", ["id"])])})
    changes = {c.op: c for c in assess(diff(before, after))}
    assert ("may-fail" in changes["add_fk"].classes) is may_fail



def _accounts(bare, strings=True):
    """``bare``: the models leave the length and precision out (``String()``, ``Numeric()``). ``strings``: with a
    VARCHAR column (MariaDB has no VARCHAR without a length, so String() cannot be a column there)."""
    md = sa.MetaData()
    sa.Table("accounts", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("amount", sa.Numeric() if bare else sa.Numeric(10, 2)),
             *([sa.Column("name", sa.String() if bare else sa.String(255))] if strings else []))
    return md


def test_a_model_type_without_arguments_accepts_the_live_length_and_precision(db_url, dialect):
    # Dagster's models: String() and Numeric() against VARCHAR(255) and NUMERIC(10,2); `alembic check` is quiet.
    strings = dialect != "mariadb"
    engine = make_engine(db_url)
    try:
        live = _snap(engine, _accounts(False, strings))
    finally:
        engine.dispose()
    models = snapshot_metadata(_accounts(True, strings), dialect)
    assert live.tables["accounts"].column("amount").type.endswith("(10,2)"), live.tables["accounts"]
    assert models.tables["accounts"].column("amount").type in ("NUMERIC", "DECIMAL")
    # Either way round: the models' side leaves the argument to the database.
    assert diff(live, models).changes == [] and diff(models, live).changes == []
    # A model that names another length or precision still differs from the database.
    narrower = sa.MetaData()
    sa.Table("accounts", narrower, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("amount", sa.Numeric(8, 2)), *([sa.Column("name", sa.String(40))] if strings else []))
    expected = {("modify_type", "accounts.amount")} | ({("modify_type", "accounts.name")} if strings else set())
    assert {(c.op, c.object) for c in diff(live, snapshot_metadata(narrower, dialect)).changes} == expected


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_between_two_databases_a_bare_varchar_is_a_change(db_url, dialect):
    # PostgreSQL's VARCHAR without a length is unbounded: VARCHAR <-> VARCHAR(255) is a change either way.
    engine = make_engine(db_url)
    try:
        bare, sized = _snap(engine, _accounts(True)), _snap(engine, _accounts(False))
    finally:
        engine.dispose()
    assert bare.tables["accounts"].column("name").type == "VARCHAR"
    expected = {("modify_type", "accounts.name"), ("modify_type", "accounts.amount")}
    assert {(c.op, c.object) for c in diff(bare, sized).changes} == expected
    assert {(c.op, c.object) for c in diff(sized, bare).changes} == expected
    # The same texts in snapshots that do not say they are models: strict as well.
    a, b = (Snapshot(dialect, "x", {"t": Table("t", [Column("id", "INTEGER"), Column("c", type_)], ["id"])})
            for type_ in ("VARCHAR", "VARCHAR(255)"))
    assert [c.op for c in diff(a, b).changes] == ["modify_type"] == [c.op for c in diff(b, a).changes]
