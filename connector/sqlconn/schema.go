package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// liveSchema is what CheckSchema and Discover read of a database: its
// tables, columns, primary keys, first columns of indexes and foreign keys
// with their ON DELETE and ON UPDATE rules. Tables of the connection's
// default schema are named bare, those of other schemas schema.table, as
// the data map names them.
type liveSchema struct {
	tables map[string]*liveTable
	names  []string // sorted
	fks    []foreignKey
}

type liveTable struct {
	name    string
	columns map[string]liveColumn
	order   []string        // column names in declaration order
	pk      []string        // primary key columns in key order
	indexed map[string]bool // columns that lead an index (the primary key's included)
	unique  map[string]bool // columns with a unique index of their own
}

type liveColumn struct {
	dataType string
	notNull  bool
	maxLen   int // characters a text column holds; 0 when unbounded or not enforced (SQLite)
}

// declaredLen reads the length of a PostgreSQL character type as
// format_type writes it: character varying(16), character(2).
var declaredLen = regexp.MustCompile(`^(?:character varying|character|varchar|char|bpchar)\((\d+)\)$`)

// foreignKey is Columns of Table referencing RefColumns of RefTable.
type foreignKey struct {
	name       string
	table      string
	columns    []string
	refTable   string
	refColumns []string
	onDelete   string // CASCADE, SET NULL, SET DEFAULT, RESTRICT or NO ACTION
	onUpdate   string
}

// Foreign key rules, as information_schema spells them.
const (
	ruleCascade    = "CASCADE"
	ruleSetNull    = "SET NULL"
	ruleSetDefault = "SET DEFAULT"
	ruleRestrict   = "RESTRICT"
	ruleNoAction   = "NO ACTION"
)

// blocks reports whether the rule makes a change of the parent fail while
// a child row references it.
func blocks(rule string) bool { return rule == ruleRestrict || rule == ruleNoAction }

// lookup finds a table by the name the data map uses; a name qualified
// with the default schema finds the bare one.
func (s *liveSchema) lookup(name string, defaultSchema string) *liveTable {
	if t := s.tables[name]; t != nil {
		return t
	}
	if sch, n, ok := strings.Cut(name, "."); ok && sch == defaultSchema {
		return s.tables[n]
	}
	return nil
}

// into returns the foreign keys referencing table.
func (s *liveSchema) into(table string) []foreignKey {
	return s.keys(func(fk foreignKey) bool { return fk.refTable == table })
}

// outOf returns the foreign keys of table.
func (s *liveSchema) outOf(table string) []foreignKey {
	return s.keys(func(fk foreignKey) bool { return fk.table == table })
}

func (s *liveSchema) keys(match func(foreignKey) bool) []foreignKey {
	var out []foreignKey
	for _, fk := range s.fks {
		if match(fk) {
			out = append(out, fk)
		}
	}
	return out
}

func (s *liveSchema) table(name string) *liveTable {
	t := s.tables[name]
	if t == nil {
		t = &liveTable{name: name, columns: map[string]liveColumn{}, indexed: map[string]bool{}, unique: map[string]bool{}}
		s.tables[name] = t
		s.names = append(s.names, name)
	}
	return t
}

// introspection is one dialect's way of reading a schema.
type introspection struct {
	d   dialect
	db  *sql.DB
	def string // the connection's default schema (database on MySQL)
}

// readLive reads the default schema and every other schema in extra.
func readLive(ctx context.Context, d dialect, db *sql.DB, extra []string) (*liveSchema, string, error) {
	in := introspection{d: d, db: db}
	var q string
	switch d.name {
	case "postgres":
		q = `SELECT current_schema()`
	case "mysql":
		q = `SELECT DATABASE()`
	case "sqlite":
		q = `SELECT 'main'`
	}
	var def sql.NullString
	if err := db.QueryRowContext(ctx, q).Scan(&def); err != nil {
		return nil, "", fmt.Errorf("read default schema: %w", err)
	}
	if !def.Valid || def.String == "" {
		return nil, "", fmt.Errorf("read default schema: the connection has none (name a database in the DSN)")
	}
	in.def = def.String
	s := &liveSchema{tables: map[string]*liveTable{}}
	schemas := []string{in.def}
	for _, e := range extra {
		if e != "" && !slices.Contains(schemas, e) {
			schemas = append(schemas, e)
		}
	}
	for _, sch := range schemas {
		var err error
		switch d.name {
		case "postgres":
			err = in.postgres(ctx, s, sch)
		case "mysql":
			err = in.mysql(ctx, s, sch)
		case "sqlite":
			err = in.sqlite(ctx, s, sch)
		}
		if err != nil {
			return nil, "", fmt.Errorf("read schema %q: %w", sch, err)
		}
	}
	// lethe's own bookkeeping (ledger.go) is neither mapped nor a
	// candidate for the map.
	s.names = slices.DeleteFunc(s.names, ledgerOwned)
	slices.Sort(s.names)
	// Both directions were read per schema, so a key between two read
	// schemas may be listed twice.
	slices.SortFunc(s.fks, func(a, b foreignKey) int {
		return strings.Compare(a.table+"\x00"+a.name, b.table+"\x00"+b.name)
	})
	s.fks = slices.CompactFunc(s.fks, func(a, b foreignKey) bool { return a.table == b.table && a.name == b.name })
	return s, in.def, nil
}

// qualify names a table as the data map would.
func (in introspection) qualify(schema, table string) string {
	if schema == in.def {
		return table
	}
	return schema + "." + table
}

// each runs q and calls fn with each row's columns scanned as strings
// (NULL as "").
func (in introspection) each(ctx context.Context, q string, args []any, n int, fn func(v []string)) error {
	rows, err := in.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		raw := make([]sql.NullString, n)
		ptrs := make([]any, n)
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		v := make([]string, n)
		for i, r := range raw {
			v[i] = r.String
		}
		fn(v)
	}
	return rows.Err()
}

// fkSep joins the columns of one key in a single text value; it cannot
// occur in a name the data map accepts.
const fkSep = "\x1f"

func (in introspection) postgres(ctx context.Context, s *liveSchema, sch string) error {
	args := []any{sch}
	err := in.each(ctx, `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`, args, 4, func(v []string) {
		t := s.table(in.qualify(sch, v[0]))
		c := liveColumn{dataType: v[2], notNull: v[3] == "true"}
		if m := declaredLen.FindStringSubmatch(v[2]); m != nil {
			c.maxLen, _ = strconv.Atoi(m[1])
		}
		t.columns[v[1]] = c
		t.order = append(t.order, v[1])
	})
	if err != nil {
		return fmt.Errorf("columns: %w", err)
	}
	// One row per column of every index, in key order; indkey[0] leads.
	err = in.each(ctx, `SELECT c.relname, a.attname, i.indisprimary, k.ord, i.indisunique AND i.indnkeyatts = 1
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON true
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE n.nspname = $1 ORDER BY c.relname, i.indexrelid, k.ord`, args, 5, func(v []string) {
		t := s.table(in.qualify(sch, v[0]))
		if v[3] == "1" {
			t.indexed[v[1]] = true
			t.unique[v[1]] = t.unique[v[1]] || v[4] == "true"
		}
		if v[2] == "true" {
			t.pk = append(t.pk, v[1])
		}
	})
	if err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	cols := func(rel, keys string) string {
		return `array_to_string(ARRAY(SELECT a.attname FROM unnest(con.` + keys + `) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = con.` + rel + ` AND a.attnum = k.attnum ORDER BY k.ord), E'\x1f')`
	}
	err = in.each(ctx, `SELECT con.conname, cn.nspname, c.relname, `+cols("conrelid", "conkey")+`,
			pn.nspname, p.relname, `+cols("confrelid", "confkey")+`, con.confdeltype, con.confupdtype
		FROM pg_constraint con
		JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
		JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
		WHERE con.contype = 'f' AND (cn.nspname = $1 OR pn.nspname = $1)`, args, 9, func(v []string) {
		s.fks = append(s.fks, foreignKey{
			name: v[0], table: in.qualify(v[1], v[2]), columns: strings.Split(v[3], fkSep),
			refTable: in.qualify(v[4], v[5]), refColumns: strings.Split(v[6], fkSep),
			onDelete: pgRule(v[7]), onUpdate: pgRule(v[8]),
		})
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	return nil
}

func pgRule(code string) string {
	switch code {
	case "c":
		return ruleCascade
	case "n":
		return ruleSetNull
	case "d":
		return ruleSetDefault
	case "r":
		return ruleRestrict
	}
	return ruleNoAction // "a"
}

func (in introspection) mysql(ctx context.Context, s *liveSchema, sch string) error {
	args := []any{sch}
	err := in.each(ctx, `SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, c.character_maximum_length
		FROM information_schema.columns c JOIN information_schema.tables t
		ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
		WHERE c.table_schema = ? ORDER BY c.table_name, c.ordinal_position`, args, 5, func(v []string) {
		t := s.table(in.qualify(sch, v[0]))
		c := liveColumn{dataType: v[2], notNull: v[3] == "NO"}
		if n, err := strconv.Atoi(v[4]); err == nil && textual(v[2]) {
			c.maxLen = n
		}
		t.columns[v[1]] = c
		t.order = append(t.order, v[1])
	})
	if err != nil {
		return fmt.Errorf("columns: %w", err)
	}
	err = in.each(ctx, `SELECT s.table_name, s.column_name, s.index_name, s.seq_in_index,
			s.non_unique = 0 AND (SELECT COUNT(*) FROM information_schema.statistics o
				WHERE o.table_schema = s.table_schema AND o.table_name = s.table_name AND o.index_name = s.index_name) = 1
		FROM information_schema.statistics s WHERE s.table_schema = ?
		ORDER BY s.table_name, s.index_name, s.seq_in_index`, args, 5, func(v []string) {
		t := s.table(in.qualify(sch, v[0]))
		if v[3] == "1" {
			t.indexed[v[1]] = true
			t.unique[v[1]] = t.unique[v[1]] || v[4] == "1"
		}
		if v[2] == "PRIMARY" {
			t.pk = append(t.pk, v[1])
		}
	})
	if err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	// One row per column of each key, grouped below.
	type keyID struct{ schema, table, name string }
	byKey := map[keyID]*foreignKey{}
	var keys []keyID
	err = in.each(ctx, `SELECT k.constraint_name, k.table_schema, k.table_name, k.column_name,
			k.referenced_table_schema, k.referenced_table_name, k.referenced_column_name, r.delete_rule, r.update_rule
		FROM information_schema.key_column_usage k JOIN information_schema.referential_constraints r
		ON r.constraint_schema = k.constraint_schema AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name
		WHERE k.referenced_table_name IS NOT NULL AND (k.table_schema = ? OR k.referenced_table_schema = ?)
		ORDER BY k.table_schema, k.table_name, k.constraint_name, k.ordinal_position`, []any{sch, sch}, 9, func(v []string) {
		id := keyID{v[1], v[2], v[0]}
		fk := byKey[id]
		if fk == nil {
			fk = &foreignKey{name: v[0], table: in.qualify(v[1], v[2]), refTable: in.qualify(v[4], v[5]), onDelete: v[7], onUpdate: v[8]}
			byKey[id] = fk
			keys = append(keys, id)
		}
		fk.columns = append(fk.columns, v[3])
		fk.refColumns = append(fk.refColumns, v[6])
	})
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	for _, id := range keys {
		s.fks = append(s.fks, *byKey[id])
	}
	return nil
}

func (in introspection) sqlite(ctx context.Context, s *liveSchema, sch string) error {
	var names []string
	// sch comes from a validated table name; quoted anyway.
	err := in.each(ctx, `SELECT name FROM `+in.d.quote(sch)+`.sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`, nil, 1, func(v []string) {
		names = append(names, v[0])
	})
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	for _, name := range names {
		t := s.table(in.qualify(sch, name))
		type pkCol struct {
			pos  string
			name string
		}
		var pk []pkCol
		err := in.each(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?, ?) ORDER BY cid`, []any{name, sch}, 4, func(v []string) {
			t.columns[v[0]] = liveColumn{dataType: v[1], notNull: v[2] == "1"}
			t.order = append(t.order, v[0])
			if v[3] != "0" {
				pk = append(pk, pkCol{v[3], v[0]})
			}
		})
		if err != nil {
			return fmt.Errorf("columns of %q: %w", name, err)
		}
		slices.SortFunc(pk, func(a, b pkCol) int { return strings.Compare(a.pos, b.pos) })
		for _, c := range pk {
			t.pk = append(t.pk, c.name)
		}
		if len(t.pk) > 0 {
			// An INTEGER PRIMARY KEY is the rowid and has no index entry.
			t.indexed[t.pk[0]] = true
		}
		err = in.each(ctx, `SELECT ii.name, il."unique" = 1 AND (SELECT COUNT(*) FROM pragma_index_info(il.name, ?)) = 1
			FROM pragma_index_list(?, ?) il JOIN pragma_index_info(il.name, ?) ii
			WHERE ii.seqno = 0`, []any{sch, name, sch, sch}, 2, func(v []string) {
			t.indexed[v[0]] = true
			t.unique[v[0]] = t.unique[v[0]] || v[1] == "1"
		})
		if err != nil {
			return fmt.Errorf("indexes of %q: %w", name, err)
		}
		byID := map[string]*foreignKey{}
		var ids []string
		err = in.each(ctx, `SELECT id, "table", "from", "to", on_delete, on_update FROM pragma_foreign_key_list(?, ?) ORDER BY id, seq`,
			[]any{name, sch}, 6, func(v []string) {
				fk := byID[v[0]]
				if fk == nil {
					fk = &foreignKey{name: name + "_fk" + v[0], table: t.name, refTable: in.qualify(sch, v[1]), onDelete: v[4], onUpdate: v[5]}
					byID[v[0]] = fk
					ids = append(ids, v[0])
				}
				fk.columns = append(fk.columns, v[2])
				fk.refColumns = append(fk.refColumns, v[3]) // "" means the parent's primary key
			})
		if err != nil {
			return fmt.Errorf("foreign keys of %q: %w", name, err)
		}
		for _, id := range ids {
			s.fks = append(s.fks, *byID[id])
		}
	}
	// REFERENCES parent without columns means the parent's primary key.
	for i := range s.fks {
		fk := &s.fks[i]
		if slices.Contains(fk.refColumns, "") {
			if p := s.tables[fk.refTable]; p != nil && len(p.pk) == len(fk.columns) {
				fk.refColumns = slices.Clone(p.pk)
			}
		}
	}
	return nil
}

// atLeast reports whether table holds more than n rows, reading at most
// n+1 of them: an exact answer without counting a huge table.
func atLeast(ctx context.Context, d dialect, db *sql.DB, table string, n int) (bool, error) {
	var got int
	q := fmt.Sprintf("SELECT COUNT(*) FROM (SELECT 1 AS one FROM %s LIMIT %d) AS sample_rows", d.quote(table), n+1)
	if err := db.QueryRowContext(ctx, q).Scan(&got); err != nil {
		return false, err
	}
	return got > n, nil
}
