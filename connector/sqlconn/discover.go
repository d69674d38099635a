package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/connlimit"
)

// ---- personal data by name --------------------------------------------------

// identityByName recognises identity columns from their names alone.
func identityByName(col string) lethe.IdentityType {
	words := strings.Split(strings.ToLower(col), "_")
	for _, w := range words {
		switch w {
		case "email", "emailaddress":
			return lethe.IdentityEmail
		case "phone", "mobile", "msisdn", "telephone", "phonenumber":
			return lethe.IdentityPhone
		}
	}
	return ""
}

// personalWords are parts of column names that suggest personal data
// other than identities: names, addresses, network and official ids.
var personalWords = map[string]bool{
	"firstname": true, "lastname": true, "fullname": true, "surname": true, "username": true,
	"address": true, "street": true, "postcode": true, "zip": true, "zipcode": true,
	"ip": true, "birthday": true, "birthdate": true, "dob": true, "ssn": true, "iban": true, "passport": true,
}

// namePrefixes are the words before "name" that make it a person's name
// (first_name, shipping_name), as opposed to product_name.
var namePrefixes = map[string]bool{
	"first": true, "last": true, "full": true, "given": true, "family": true, "middle": true, "display": true,
	"user": true, "customer": true, "shipping": true, "billing": true, "contact": true, "account": true, "real": true,
}

// personalByName reports whether a column's name suggests personal data.
func personalByName(col string) bool {
	if identityByName(col) != "" {
		return true
	}
	words := strings.Split(strings.ToLower(col), "_")
	for i, w := range words {
		if personalWords[w] {
			return true
		}
		if w == "name" && i > 0 && namePrefixes[words[i-1]] {
			return true
		}
		if w == "birth" || (w == "ip" && i+1 < len(words) && words[i+1] == "address") {
			return true
		}
	}
	return false
}

// singular turns a table name into the stem of its id columns
// (users -> user, addresses -> address, people stays people).
func singular(table string) string {
	_, name, ok := strings.Cut(table, ".")
	if !ok {
		name = table
	}
	name = strings.ToLower(name)
	switch {
	case strings.HasSuffix(name, "sses"), strings.HasSuffix(name, "xes"), strings.HasSuffix(name, "ches"), strings.HasSuffix(name, "shes"):
		return strings.TrimSuffix(name, "es")
	case strings.HasSuffix(name, "ies"):
		return strings.TrimSuffix(name, "ies") + "y"
	case strings.HasSuffix(name, "s") && !strings.HasSuffix(name, "ss") && !strings.HasSuffix(name, "us"):
		return strings.TrimSuffix(name, "s")
	}
	return name
}

// ---- data map entries -------------------------------------------------------

// entry is one table of a proposed data map.
type entry struct {
	name       string
	pk         string
	identities map[lethe.IdentityType]string
	root       bool // the subject's accounts (root: true)
	refs       []Reference
	action     string
	notes      []string // comment lines written above the entry
	actionNote string   // comment on the action line
}

// write renders e as a YAML sequence item indented by indent.
func (e entry) write(b *strings.Builder, indent string) {
	for _, n := range e.notes {
		fmt.Fprintf(b, "%s# %s\n", indent, n)
	}
	fmt.Fprintf(b, "%s- name: %s\n", indent, e.name)
	in := indent + "  "
	if e.pk != "" && e.pk != "id" {
		fmt.Fprintf(b, "%sprimary_key: %s\n", in, e.pk)
	}
	if len(e.identities) > 0 {
		types := make([]string, 0, len(e.identities))
		for typ := range e.identities {
			types = append(types, string(typ))
		}
		slices.Sort(types)
		parts := make([]string, len(types))
		for i, typ := range types {
			parts[i] = typ + ": " + e.identities[lethe.IdentityType(typ)]
		}
		fmt.Fprintf(b, "%sidentities: {%s}\n", in, strings.Join(parts, ", "))
	}
	if e.root {
		fmt.Fprintf(b, "%sroot: true\n", in)
	}
	ref := func(r Reference) string {
		return fmt.Sprintf("{column: %s, table: %s, to: %s}", r.Column, r.Table, r.To)
	}
	switch len(e.refs) {
	case 0:
	case 1:
		fmt.Fprintf(b, "%sreferences: %s\n", in, ref(e.refs[0]))
	default:
		fmt.Fprintf(b, "%sreferences:\n", in)
		for _, r := range e.refs {
			fmt.Fprintf(b, "%s  - %s\n", in, ref(r))
		}
	}
	action := e.action
	if action == "" {
		action = string(lethe.ActionDelete)
	}
	if e.actionNote != "" {
		fmt.Fprintf(b, "%saction: %s  # %s\n", in, action, e.actionNote)
	} else {
		fmt.Fprintf(b, "%saction: %s\n", in, action)
	}
}

// entryFor proposes a map entry for an unmapped table linked to the map
// by fks, adding identities its column names suggest.
func (ck *schemaCheck) entryFor(name string, fks []foreignKey) string {
	e := entry{name: name, identities: map[lethe.IdentityType]string{}, action: "delete  # or pseudonymize, or retain with a reason"}
	for _, fk := range fks {
		if len(fk.columns) == 1 {
			e.refs = append(e.refs, Reference{Column: fk.columns[0], Table: ck.mappedName(fk.refTable), To: fk.refColumns[0]})
		}
	}
	if lt := ck.ls.tables[name]; lt != nil {
		if len(lt.pk) == 1 {
			e.pk = lt.pk[0]
		}
		for _, col := range lt.order {
			if typ := identityByName(col); typ != "" && e.identities[typ] == "" && validIdent(col) && textual(lt.columns[col].dataType) {
				e.identities[typ] = col
			}
		}
	}
	var b strings.Builder
	e.write(&b, "")
	return b.String()
}

// unmapped warns about tables outside the map that hold personal data by
// the look of them: a foreign key into a mapped table, a column named like
// the id of a mapped table that holds a user_id identity, or columns named
// like personal data. Each warning carries a suggested entry.
func (ck *schemaCheck) unmapped() {
	cascaded := map[string]bool{}
	for _, cs := range ck.cascades {
		cascaded[cs.fk.table] = true
	}
	// Tables whose id a column may hold: mapped tables with a user_id
	// identity, named by the stem of their name.
	idOwners := map[string]*table{}
	for _, t := range ck.c.tables {
		if col, ok := t.Identities[lethe.IdentityUserID]; ok {
			idOwners[singular(t.Name)+"_"+col] = t
			idOwners[string(lethe.IdentityUserID)] = t
		}
	}
	for _, name := range ck.ls.names {
		if ck.mapped[name] != nil || cascaded[name] || ck.flagged[name] {
			continue
		}
		lt := ck.ls.tables[name]
		var reasons []string
		var fks []foreignKey
		for _, fk := range ck.ls.outOf(name) {
			if ck.mapped[fk.refTable] != nil {
				fks = append(fks, fk)
				reasons = append(reasons, fmt.Sprintf("%s references %s", cols(fk), ck.mappedName(fk.refTable)))
			}
		}
		var guessed []string
		for _, col := range lt.order {
			if t := idOwners[strings.ToLower(col)]; t != nil && !slices.ContainsFunc(fks, func(fk foreignKey) bool { return slices.Contains(fk.columns, col) }) {
				fks = append(fks, foreignKey{table: name, columns: []string{col}, refTable: ck.live[t], refColumns: []string{t.Identities[lethe.IdentityUserID]}})
				reasons = append(reasons, fmt.Sprintf("%s is named like the id of %s", col, t.Name))
			} else if personalByName(col) {
				guessed = append(guessed, col)
			}
		}
		if len(guessed) > 0 {
			reasons = append(reasons, "columns named like personal data: "+strings.Join(guessed, ", "))
		}
		if len(reasons) == 0 {
			continue
		}
		ck.add(connector.SeverityWarning, name, "", ck.entryFor(name, fks),
			"is not in the data map but may hold personal data (%s); map it or confirm it holds none", strings.Join(reasons, "; "))
	}
}

// ---- discover ---------------------------------------------------------------

// DiscoverOptions say which database to read and where to root the map.
type DiscoverOptions struct {
	Driver string // postgres | mysql | sqlite
	DSN    string
	Root   string // the table of the people data is erased for, e.g. users
	// Target is the proposed target's name. Default "app".
	Target string
	// DSNVar is the environment variable the proposed map reads the DSN
	// from (the DSN itself may hold a password and is never written).
	// Default TARGET_DSN, from Target.
	DSNVar string
	// Sample reads up to SampleRows values of each text column to
	// recognise emails and phones by their values. The values are only
	// classified, never kept or written.
	Sample bool
}

// SampleRows is how many values of each column Discover's sample reads.
const SampleRows = 50

// Discover reads a database's schema and proposes a data map rooted at
// o.Root: every table that reaches the root through foreign keys (or
// columns named like the root's id), and every table with columns that
// look like emails or phones, with identities and references filled in,
// children before parents. It returns a whole configuration file holding
// one target; every guess carries a "REVIEW:" comment.
func Discover(ctx context.Context, o DiscoverOptions) ([]byte, error) {
	d, ok := dialects[o.Driver]
	if !ok {
		return nil, fmt.Errorf("driver %q is not supported (use postgres, mysql or sqlite)", o.Driver)
	}
	if !validTableName(o.Root) {
		return nil, fmt.Errorf("root %q is not a plain table name", o.Root)
	}
	if o.Target == "" {
		o.Target = "app"
	}
	if o.DSNVar == "" {
		o.DSNVar = strings.ToUpper(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(o.Target, "_")) + "_DSN"
	}
	db, err := connlimit.OpenDB(d.driver, o.DSN, connlimit.Waiter{What: "map discover"})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	var extra []string
	if sch, _, ok := strings.Cut(o.Root, "."); ok {
		extra = append(extra, sch)
	}
	ls, def, err := readLive(ctx, d, db, extra)
	if err != nil {
		return nil, err
	}
	root := ls.lookup(o.Root, def)
	if root == nil {
		return nil, fmt.Errorf("root table %q not found (tables: %s)", o.Root, strings.Join(ls.names, ", "))
	}
	if len(root.pk) != 1 {
		return nil, fmt.Errorf("root table %q needs a single-column primary key", o.Root)
	}
	dv := &discovery{d: d, db: db, ls: ls, root: root, entries: map[string]*entry{}}
	if o.Sample {
		if err := dv.sample(ctx); err != nil {
			return nil, err
		}
	}
	dv.walk()
	var b strings.Builder
	fmt.Fprintf(&b, "# Data map proposed by `lethe map discover` from the schema of a %s database, rooted at %s.\n", o.Driver, root.name)
	b.WriteString("# Every guess is marked REVIEW: resolve each (then remove the mark) and run `lethe map check`.\n")
	b.WriteString("targets:\n")
	fmt.Fprintf(&b, "  - name: %s\n    kind: sql\n    driver: %s\n", o.Target, o.Driver)
	fmt.Fprintf(&b, "    dsn: ${%s}  # the DSN may hold a password, so it is read from the environment\n", o.DSNVar)
	b.WriteString("    tables:\n")
	for _, name := range dv.childrenFirst() {
		dv.entries[name].write(&b, "      ")
	}
	for _, n := range dv.skipped {
		fmt.Fprintf(&b, "      # REVIEW: %s\n", n)
	}
	return []byte(b.String()), nil
}

// discovery is one run of Discover.
type discovery struct {
	d       dialect
	db      *sql.DB
	ls      *liveSchema
	root    *liveTable
	entries map[string]*entry
	order   []string                                 // tables in the order they were found
	sampled map[string]map[string]lethe.IdentityType // table -> column -> type the values showed
	skipped []string
}

var emailValue = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// sample classifies the values of every text column. A column whose
// sampled values are (nearly) all emails or all phones is an identity.
func (dv *discovery) sample(ctx context.Context) error {
	dv.sampled = map[string]map[string]lethe.IdentityType{}
	for _, name := range dv.ls.names {
		lt := dv.ls.tables[name]
		if !validTableName(name) {
			continue
		}
		for _, col := range lt.order {
			if !validIdent(col) || !textual(lt.columns[col].dataType) {
				continue
			}
			typ, err := dv.classify(ctx, name, col)
			if err != nil {
				return fmt.Errorf("sample %q.%q: %w", name, col, err)
			}
			if typ != "" {
				if dv.sampled[name] == nil {
					dv.sampled[name] = map[string]lethe.IdentityType{}
				}
				dv.sampled[name][col] = typ
			}
		}
	}
	return nil
}

func textual(dataType string) bool {
	t := strings.ToLower(dataType)
	return t == "" || strings.Contains(t, "char") || strings.Contains(t, "text") || strings.Contains(t, "clob") || strings.Contains(t, "string")
}

func (dv *discovery) classify(ctx context.Context, table, col string) (lethe.IdentityType, error) {
	c := dv.d.quote(col)
	rows, err := dv.db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NOT NULL LIMIT %d", c, dv.d.quote(table), c, SampleRows))
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var n, emails, phones int
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return "", err
		}
		s := strings.TrimSpace(v.String)
		if s == "" {
			continue
		}
		n++
		if _, ok := lethe.NormalizeEmail(s); ok && emailValue.MatchString(s) {
			emails++
		} else if _, ok := lethe.NormalizePhone(s); ok && strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'z' }) < 0 {
			phones++
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	// Most, not all: a column of emails holds the odd malformed one.
	switch {
	case n == 0:
		return "", nil
	case emails*10 >= n*8:
		return lethe.IdentityEmail, nil
	case phones*10 >= n*8:
		return lethe.IdentityPhone, nil
	}
	return "", nil
}

// include adds a table's entry with its identities and personal columns.
func (dv *discovery) include(name string) *entry {
	if e := dv.entries[name]; e != nil {
		return e
	}
	lt := dv.ls.tables[name]
	e := &entry{name: name, identities: map[lethe.IdentityType]string{}}
	if len(lt.pk) == 1 {
		e.pk = lt.pk[0]
	} else {
		e.notes = append(e.notes, "REVIEW: no primary key; lethe changes rows by primary key, so add one (or name a unique column in primary_key)")
	}
	var personal []string
	for _, col := range lt.order {
		if !validIdent(col) {
			continue
		}
		typ, how := identityByName(col), "its name"
		if !textual(lt.columns[col].dataType) {
			typ = "" // email_verified BOOLEAN, phone_count INT
		}
		if st := dv.sampled[name][col]; st != "" {
			if typ != "" && typ != st {
				e.notes = append(e.notes, fmt.Sprintf("REVIEW: %s is named like a %s but its values look like %ss", col, typ, st))
			}
			typ, how = st, "its sampled values"
		}
		switch {
		case typ == "":
			if personalByName(col) {
				personal = append(personal, col)
			}
		case e.identities[typ] == "":
			e.identities[typ] = col
			e.notes = append(e.notes, fmt.Sprintf("REVIEW: %s taken as the %s identity by %s", col, typ, how))
		default:
			e.notes = append(e.notes, fmt.Sprintf("REVIEW: %s also looks like a %s; a table maps one column per identity type, so it is not matched (it goes with the row)", col, typ))
		}
	}
	if len(personal) > 0 {
		e.notes = append(e.notes, "personal columns "+strings.Join(personal, ", ")+": they go with the row on delete; pseudonymize must rewrite them")
	}
	e.actionNote = "REVIEW: delete, pseudonymize (keep the row, rewrite its personal columns) or retain (with a reason)?"
	if bookkeeping(name) {
		e.actionNote = "REVIEW: records like these are often kept by law: retain (with a reason), or pseudonymize to keep the figures without the person?"
	}
	dv.entries[name] = e
	dv.order = append(dv.order, name)
	return e
}

// bookkeeping reports whether a table's name suggests records the law may
// require keeping.
func bookkeeping(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"invoice", "payment", "transaction", "ledger", "receipt", "tax", "billing", "refund"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// walk includes the root, every table linked to an included one by a
// foreign key or by a column named like an included table's id, then
// every table with identity columns.
func (dv *discovery) walk() {
	root := dv.include(dv.root.name)
	root.identities[lethe.IdentityUserID] = dv.root.pk[0]
	// root: true, so Resolve follows only the accounts' identity columns
	// and counts the accounts a request reaches (docs/datamap.md).
	root.root = true
	root.notes = append(root.notes, fmt.Sprintf("the root: %s is the user_id identity (its primary key); root: true, so only its identity columns are followed and a request reaching two accounts is held", dv.root.pk[0]))
	root.actionNote = "REVIEW: erasing a person deletes their row here; pseudonymize to keep it"
	for i := 0; i < len(dv.order); i++ {
		parent := dv.order[i]
		pt := dv.ls.tables[parent]
		for _, fk := range dv.ls.into(parent) {
			child := fk.table
			switch {
			case child == parent:
				dv.skip(fmt.Sprintf("%s references itself (%s): rows of one person pointing at another's; lethe cannot follow it, and the check will ask how its ON DELETE rule treats other people's rows", parent, cols(fk)))
				continue
			case len(fk.columns) != 1:
				dv.skip(fmt.Sprintf("%s references %s through several columns (%s); a reference follows one column: map it by hand", child, parent, cols(fk)))
				continue
			case !validTableName(child) || !validIdent(fk.columns[0]) || !validIdent(fk.refColumns[0]):
				continue
			}
			dv.link(child, Reference{Column: fk.columns[0], Table: parent, To: fk.refColumns[0]}, "")
		}
		// Columns named like this table's id, without a foreign key.
		if len(pt.pk) != 1 {
			continue
		}
		idName := singular(parent) + "_" + pt.pk[0]
		for _, name := range dv.ls.names {
			lt := dv.ls.tables[name]
			if name == parent || !validTableName(name) {
				continue
			}
			for _, col := range lt.order {
				if !strings.EqualFold(col, idName) || !validIdent(col) {
					continue
				}
				if slices.ContainsFunc(dv.ls.outOf(name), func(fk foreignKey) bool { return slices.Contains(fk.columns, col) }) {
					continue // its foreign key says where it points
				}
				dv.link(name, Reference{Column: col, Table: parent, To: pt.pk[0]},
					fmt.Sprintf("REVIEW: %s has no foreign key; taken as a reference to %s.%s by its name", col, parent, pt.pk[0]))
			}
		}
	}
	for _, name := range dv.ls.names {
		if dv.entries[name] != nil || !validTableName(name) {
			continue
		}
		lt := dv.ls.tables[name]
		if slices.ContainsFunc(lt.order, func(col string) bool {
			return (identityByName(col) != "" && textual(lt.columns[col].dataType)) || dv.sampled[name][col] != ""
		}) {
			if len(lt.pk) > 1 {
				dv.skip(fmt.Sprintf("%s has identity columns and a primary key of several columns (%s): map it by hand", name, strings.Join(lt.pk, ", ")))
				continue
			}
			e := dv.include(name)
			if len(e.identities) == 0 {
				delete(dv.entries, name)
				dv.order = dv.order[:len(dv.order)-1]
				continue
			}
			e.notes = append(e.notes, "REVIEW: not linked to "+dv.root.name+" by any key; found by its identity columns only")
		}
	}
}

// link adds a reference from child to an included parent, unless it
// would close a cycle (the connector refuses those).
func (dv *discovery) link(child string, r Reference, note string) {
	if pk := dv.ls.tables[child].pk; len(pk) > 1 {
		dv.skip(fmt.Sprintf("%s has a primary key of several columns (%s) and references %s.%s: map it by hand", child, strings.Join(pk, ", "), r.Table, r.Column))
		return
	}
	if dv.reaches(r.Table, child) {
		dv.skip(fmt.Sprintf("%s.%s -> %s would close a cycle of references; it is left out", child, r.Column, r.Table))
		return
	}
	e := dv.include(child)
	if slices.ContainsFunc(e.refs, func(x Reference) bool { return x.Column == r.Column && x.Table == r.Table }) {
		return
	}
	e.refs = append(e.refs, r)
	if note != "" {
		e.notes = append(e.notes, note)
	}
}

// skip records a link left out, once.
func (dv *discovery) skip(note string) {
	if !slices.Contains(dv.skipped, note) {
		dv.skipped = append(dv.skipped, note)
	}
}

// reaches reports whether from reaches to over references so far.
func (dv *discovery) reaches(from, to string) bool {
	if from == to {
		return true
	}
	seen := map[string]bool{}
	var walk func(n string) bool
	walk = func(n string) bool {
		if n == to {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		if e := dv.entries[n]; e != nil {
			for _, r := range e.refs {
				if walk(r.Table) {
					return true
				}
			}
		}
		return false
	}
	return walk(from)
}

// childrenFirst orders the entries as the connector erases them.
func (dv *discovery) childrenFirst() []string {
	done := map[string]bool{}
	var out []string
	var visit func(n string)
	// Post-order over parents puts parents first; reversed below.
	visit = func(n string) {
		if done[n] {
			return
		}
		done[n] = true
		for _, r := range dv.entries[n].refs {
			visit(r.Table)
		}
		out = append(out, n)
	}
	for _, n := range dv.order {
		visit(n)
	}
	slices.Reverse(out)
	return out
}
