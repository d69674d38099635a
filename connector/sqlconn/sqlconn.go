package sqlconn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/connlimit"
	scrub "github.com/lethe-privacy/lethe/redact"
)

// Kind is the connector kind of SQL targets in the data map.
const Kind = "sql"

// Info returns the registry entry for SQL targets.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(ctx context.Context, t connector.Target) (connector.Connector, error) {
		return New(ctx, t)
	}}
}

// Limits on Resolve, which follows links until nothing new turns up: a
// data map that links unrelated people (a shared placeholder email, say)
// would otherwise pull in half the database.
const (
	maxResolveRounds = 4
	maxResolveRows   = 10000
)

// Connector erases a subject's rows from one SQL database.
type Connector struct {
	name   string
	d      dialect
	db     *sql.DB
	stmts  *stmtCache
	batch  int
	key    []byte
	tables []*table // children before parents
	region string   // default_region for phones stored nationally
	follow int      // follow_limit

	mu        sync.Mutex
	schema    schema // nil until first loaded
	returning bool   // DELETE ... RETURNING works (set with schema)

	live liveCache // constraints read for CheckSchema and declared cascades

	ledgerReady bool // the ledger tables exist (under mu)

	lookups lookupGroup // concurrent candidate queries run as one (coalesce.go)
	params  int         // the most parameters of one candidate statement
	confirm int         // the most rows one identity column may confirm (maxConfirmedRows)
}

var (
	_ connector.Ledger    = (*Connector)(nil)
	_ connector.Connector = (*Connector)(nil)
	_ connector.Validator = (*Connector)(nil)
	_ connector.Closer    = (*Connector)(nil)
)

// New decodes and checks the target's options and opens its connection
// pool. It does not connect: Validate checks the live database.
func New(ctx context.Context, t connector.Target) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return Open(t.Name, o)
}

// Open is New for options already decoded. Each new connection of the
// pool waits up to connlimit.DefaultWait while the server refuses it as
// full (too many connections), logging through slog.Default(); a task
// still refused after that fails its attempt like any transient error and
// is retried later.
func Open(name string, o Options) (*Connector, error) {
	return open(name, o, waitingOpen(name, 0))
}

// waitingOpen opens pools whose new connections wait up to max (0:
// connlimit.DefaultWait) while the server is full.
func waitingOpen(name string, max time.Duration) func(driver, dsn string) (*sql.DB, error) {
	return func(driver, dsn string) (*sql.DB, error) {
		return connlimit.OpenDB(driver, dsn, connlimit.Waiter{What: fmt.Sprintf("target %q", name), Max: max})
	}
}

// open is Open with the way the pool is opened given, so that tests can
// count what reaches the database.
func open(name string, o Options, sqlOpen func(driver, dsn string) (*sql.DB, error)) (*Connector, error) {
	tables, err := compile(name, &o)
	if err != nil {
		return nil, err
	}
	d := dialects[o.Driver]
	db, err := sqlOpen(d.driver, d.sessionDSN(o.DSN))
	if err != nil {
		return nil, fmt.Errorf("target %q: open: %w", name, err)
	}
	// database/sql keeps 2 idle connections by default: with more workers
	// than that, every erasure opened new sessions (a TLS handshake and
	// authentication each on a server database).
	db.SetMaxOpenConns(o.MaxConnections)
	db.SetMaxIdleConns(o.MaxConnections)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &Connector{name: name, d: d, db: db, stmts: newStmtCache(db, d), batch: o.BatchSize, key: []byte(o.HashKey), tables: tables,
		region: o.DefaultRegion, follow: o.FollowLimit, params: d.maxParams(), confirm: maxConfirmedRows}, nil
}

// Close closes the connection pool.
func (c *Connector) Close() error {
	c.stmts.close()
	return c.db.Close()
}

// schema maps table name -> column name -> column.
type schema map[string]map[string]column

func (s schema) kind(table, col string) colKind { return s[table][col].kind }

// array reports whether a list compared with column col of table may be
// one array parameter (column.array).
func (s schema) array(table, col string) bool { return s[table][col].array }

func (c *Connector) loadSchema(ctx context.Context) (schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.schema != nil {
		return c.schema, nil
	}
	s := schema{}
	for _, t := range c.tables {
		cols, err := c.d.columns(ctx, c.db, t.Name)
		if err != nil {
			return nil, fmt.Errorf("target %q: read schema of %q: %w", c.name, t.Name, err)
		}
		s[t.Name] = cols
	}
	// DELETE ... RETURNING reads what the ledger keeps of a batch in the
	// statement that deletes it: PostgreSQL, and SQLite from 3.35.
	c.returning = c.d.name == "postgres"
	if c.d.name == "sqlite" {
		var v string
		if err := c.db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err != nil {
			return nil, fmt.Errorf("target %q: read the SQLite version: %w", c.name, err)
		}
		c.returning = versionAtLeast(v, 3, 35)
	}
	c.schema = s
	return s, nil
}

// versionAtLeast reports whether a dotted version is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Validate checks the data map against the live schema: every table and
// column exists and every strategy can write its column.
func (c *Connector) Validate(ctx context.Context) error {
	if err := c.db.PingContext(ctx); err != nil {
		return fmt.Errorf("target %q: connect: %w", c.name, err)
	}
	c.mu.Lock()
	c.schema = nil // re-read: Validate is how an operator checks a changed schema
	c.mu.Unlock()
	s, err := c.loadSchema(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range c.tables {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("target %q: table %q: "+format, append([]any{c.name, t.Name}, args...)...))
		}
		cols := s[t.Name]
		if len(cols) == 0 {
			fail("does not exist")
			continue
		}
		need := func(col, role string) {
			if _, ok := cols[col]; !ok {
				fail("%s column %q does not exist", role, col)
			}
		}
		for _, k := range t.key {
			need(k, "primary key")
		}
		for _, typ := range t.idTypes {
			need(t.Identities[typ], string(typ)+" identity")
		}
		for _, l := range t.parents {
			need(l.column, "reference")
			if pc := s[l.parent.Name]; len(pc) > 0 {
				if _, ok := pc[l.to]; !ok {
					fail("referenced column %q.%q does not exist", l.parent.Name, l.to)
				}
			}
		}
		for _, col := range t.columns {
			info, ok := cols[col]
			if !ok {
				need(col, "pseudonymized")
				continue
			}
			switch st := t.Columns[col]; st.kind() {
			case StrategyHash, StrategyRedactEmail, StrategyRandom:
				if !info.textual() {
					fail("column %q is %s; strategy %s writes text", col, info.dataType, st.kind())
				}
			case StrategyFixed:
				if _, err := strconv.ParseInt(st.Value, 10, 64); info.kind == kindInt && err != nil {
					fail("column %q is %s; the fixed value is not an integer", col, info.dataType)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// values groups a subject's identity values by type, without duplicates.
type values map[lethe.IdentityType][]string

func valuesOf(ids []lethe.Identity) values {
	v := values{}
	for _, id := range ids {
		if id.Value != "" && !slices.Contains(v[id.Type], id.Value) {
			v[id.Type] = append(v[id.Type], id.Value)
		}
	}
	return v
}

// valuesOfAll returns the values of every subject's identities, each once.
func valuesOfAll(subjects []connector.Subject) values {
	var ids []lethe.Identity
	for _, s := range subjects {
		ids = append(ids, s.Identities...)
	}
	return valuesOf(ids)
}

// distinctRequests refuses a batch (op) listing a request twice: each
// request's answer is its own.
func (c *Connector) distinctRequests(op string, subjects []connector.Subject) error {
	seen := map[string]bool{}
	for _, s := range subjects {
		if seen[s.RequestID] {
			return fmt.Errorf("target %q: %s: a request id is listed twice", c.name, op)
		}
		seen[s.RequestID] = true
	}
	return nil
}

// all returns the values as identities again, for redaction.
func (v values) all() []lethe.Identity {
	var out []lethe.Identity
	for t, vs := range v {
		for _, s := range vs {
			out = append(out, lethe.Identity{Type: t, Value: s})
		}
	}
	return out
}

// query collects the arguments of one statement as its text is written,
// so placeholders and arguments can never get out of step.
type query struct {
	d    dialect
	text string // the statement, once written
	args []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return q.d.placeholder(len(q.args))
}

var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// typed converts identity values for comparison with a column of kind k,
// dropping those that cannot equal any value of it.
func typed(vs []string, k colKind) []any {
	var out []any
	for _, v := range vs {
		switch k {
		case kindInt:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out = append(out, n)
			}
		case kindUUID:
			if uuidLike.MatchString(v) {
				out = append(out, v)
			}
		default:
			out = append(out, v)
		}
	}
	return out
}

// where writes the condition selecting the subject's rows of t: an identity
// column holds one of the subject's values, or a reference points at a
// subject's row of the parent (recursively, so links span several hops).
// It returns "" when nothing can match.
func (c *Connector) where(q *query, t *table, m *matcher, s schema) string {
	terms := c.terms(q, t, m, s)
	switch len(terms) {
	case 0:
		return ""
	case 1:
		return "(" + terms[0] + ")"
	}
	pk := c.d.keyCols(t.key)
	return fmt.Sprintf("(%s IN (%s))", pk, c.union(t, terms))
}

// keySet writes a query of the primary keys of the rows where selects,
// for "key IN (keySet)", a count or a LIMIT: the UNION of the terms itself
// when there are several, rather than the rows of t whose key is in it,
// which would read t once more for nothing. "" when nothing can match.
func (c *Connector) keySet(q *query, t *table, m *matcher, s schema) string {
	terms := c.terms(q, t, m, s)
	switch len(terms) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Trim(c.d.keyCols(t.key), "()"), c.d.quote(t.Name), terms[0])
	}
	return c.union(t, terms)
}

// union selects the primary keys of t's rows that match any of terms.
// Not "a OR b": PostgreSQL cannot combine an index scan with an IN
// (subquery) under OR, so it would scan the whole table, and every table
// below it (0.6s instead of 0.4ms per statement at 100k users;
// docs/performance.md). A UNION of one indexable SELECT per term finds the
// same rows through the indexes. The derived table keeps MySQL from
// refusing a subquery on the table a DELETE changes (error 1093).
func (c *Connector) union(t *table, terms []string) string {
	list, name := strings.Trim(c.d.keyCols(t.key), "()"), c.d.quote(t.Name)
	sel := make([]string, len(terms))
	for i, term := range terms {
		sel[i] = fmt.Sprintf("SELECT %s FROM %s WHERE %s", list, name, term)
	}
	return fmt.Sprintf("SELECT %s FROM (%s) AS subject_rows", list, strings.Join(sel, " UNION "))
}

// terms writes where's conditions, each one indexable on its own.
func (c *Connector) terms(q *query, t *table, m *matcher, s schema) []string {
	var terms []string
	// The keys confirmed in every column, and the values of an identity
	// that is the primary key itself, are one lookup by primary key: one
	// term, not one per column (each is a UNION branch below).
	var keys [][]any
	seen := map[string]bool{}
	addKeys := func(ks [][]any) {
		for _, k := range ks {
			if id := fmt.Sprintf("%T%v", k, k); !seen[id] {
				seen[id] = true
				keys = append(keys, k)
			}
		}
	}
	for _, typ := range t.idTypes {
		col := t.Identities[typ]
		if m.confirmed[t][col] {
			addKeys(m.keys[t][col])
			continue
		}
		args := typed(m.v[typ], s.kind(t.Name, col))
		if len(args) == 0 {
			continue
		}
		if len(t.key) == 1 && t.key[0] == col {
			for _, a := range args {
				addKeys([][]any{{a}})
			}
			continue
		}
		terms = append(terms, q.in(c.d.quote(col), args, s.array(t.Name, col)))
	}
	if len(keys) > 0 {
		terms = append(terms, c.keyTerm(q, t, keys, s))
	}
	for _, l := range t.parents {
		// A child row is the subject's when its reference holds a value
		// the subject's parent row held: by the subject's identity values
		// when the referenced column is one (users.id is the user_id), and
		// by the values the ledger kept of parent rows already erased.
		// Both find it without the parent row, which a late writer's child
		// outlives.
		if typ, ok := identityOf(l.parent, l.to); ok && !m.confirmed[l.parent][l.to] {
			if args := typed(m.v[typ], s.kind(t.Name, l.column)); len(args) > 0 {
				terms = append(terms, q.in(c.d.quote(l.column), args, s.array(t.Name, l.column)))
			}
		}
		if vals := m.erased[l.parent][l.to]; len(vals) > 0 {
			if args := typed(vals, s.kind(t.Name, l.column)); len(args) > 0 {
				terms = append(terms, q.in(c.d.quote(l.column), args, s.array(t.Name, l.column)))
			}
		}
		if len(l.parent.key) == 1 && l.parent.key[0] == l.to {
			// The reference holds the parent's key: the parent's key set
			// is the list, without reading the parent's rows once more.
			if keys := c.keySet(q, l.parent, m, s); keys != "" {
				terms = append(terms, fmt.Sprintf("%s IN (%s)", c.d.quote(l.column), keys))
			}
			continue
		}
		sub := c.where(q, l.parent, m, s)
		if sub == "" {
			continue
		}
		terms = append(terms, fmt.Sprintf("%s IN (SELECT %s FROM %s WHERE %s)",
			c.d.quote(l.column), c.d.quote(l.to), c.d.quote(l.parent.Name), sub))
	}
	return terms
}

// identityOf returns the identity type column col of t holds, if any.
func identityOf(t *table, col string) (lethe.IdentityType, bool) {
	for _, typ := range t.idTypes {
		if t.Identities[typ] == col {
			return typ, true
		}
	}
	return "", false
}

// begin checks ctx, loads the schema and matches the subject's values in
// tables (see matcher): the start of every method.
func (c *Connector) begin(ctx context.Context, op string, v values, tables []*table) (schema, *matcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, redact(fmt.Errorf("target %q: %s: %w", c.name, op, err), v.all())
	}
	s, err := c.loadSchema(ctx)
	if err != nil {
		return nil, nil, redact(err, v.all())
	}
	m, err := c.matchTables(ctx, v, s, tables, nil)
	if err != nil {
		err = fmt.Errorf("target %q: %s: %w", c.name, op, err)
		if c.d.missing(err) {
			err = connector.Permanent(err)
		}
		return nil, nil, redact(err, v.all())
	}
	return s, m, nil
}

// fail wraps a database error with the target and table, marks errors no
// retry can fix, and strips any identity value a driver may have quoted.
func (c *Connector) fail(v values, op string, t *table, err error) error {
	err = fmt.Errorf("target %q: %s %q: %w", c.name, op, t.Name, err)
	if c.d.missing(err) {
		err = connector.Permanent(err)
	}
	return redact(err, v.all())
}

// text renders a scanned value as an identity value; false for NULL.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []byte:
		return string(x), len(x) > 0
	case string:
		return x, x != ""
	case int64:
		return strconv.FormatInt(x, 10), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	default:
		s := fmt.Sprint(x)
		return s, s != ""
	}
}

func item(t *table, n int64) lethe.ReportItem {
	it := lethe.ReportItem{Object: t.Name, Action: t.Action, Rows: n}
	if t.Action == lethe.ActionRetain {
		it.Reason, it.Until = t.Reason, t.until
	}
	return it
}

// pseudonymInput is the value a derived strategy (hash, redact_email) is
// computed from: for an identity column, its canonical form under the
// column's rule, so the case variants of one address (or the ways of
// writing one phone) get one pseudonym.
func (c *Connector) pseudonymInput(t *table, col string, value any) any {
	r, ok := t.rules[col]
	if !ok || r == MatchExact {
		return value
	}
	raw, ok := text(value)
	if !ok {
		return value
	}
	if cv, ok := canonical(r, c.region, raw); ok {
		return cv
	}
	return value
}

// pseudonym returns the replacement for value under st. NULL stays NULL
// for the derived strategies: there is nothing to hide.
func (c *Connector) pseudonym(st Strategy, value any) (any, error) {
	switch st.kind() {
	case StrategyNull:
		return nil, nil
	case StrategyFixed:
		return st.Value, nil
	}
	s, ok := text(value)
	if !ok {
		return nil, nil
	}
	switch st.kind() {
	case StrategyHash:
		return c.mac(s), nil
	case StrategyRedactEmail:
		return "erased+" + c.mac(s)[:16] + "@invalid", nil
	case StrategyRandom:
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return hex.EncodeToString(b), nil
	}
	return nil, fmt.Errorf("unknown strategy %q", st.kind())
}

func (c *Connector) mac(s string) string {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// redact strips every form of the subject's identities, and anything that
// looks like an email address or phone number, from a database error;
// an error no retry can fix stays so.
func redact(err error, ids []lethe.Identity) error {
	r := scrub.Error(err, ids)
	if r != err && connector.IsPermanent(err) {
		return connector.Permanent(r)
	}
	return r
}
