package sqlconn

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// Options configure one SQL target; see the package documentation for the
// YAML form.
type Options struct {
	Driver string `yaml:"driver"` // postgres | mysql | sqlite; required
	DSN    string `yaml:"dsn"`    // the driver's DSN; required
	// BatchSize bounds the rows one transaction changes. Default 1000.
	BatchSize int `yaml:"batch_size"`
	// HashKey keys the hash and redact_email strategies (HMAC-SHA256). It
	// must stay the same across runs for pseudonyms to stay stable.
	// Required, at least 16 bytes, when either strategy is used.
	HashKey string `yaml:"hash_key"`
	// DefaultRegion (ISO 3166, e.g. "GB") reads phones stored as national
	// numbers ("07911 123456"); without it only international forms match.
	DefaultRegion string `yaml:"default_region"`
	// FollowLimit: Resolve never follows a value found in the data that
	// matches more than this many rows of a root table (a placeholder
	// such as +10000000000 or test@test.com shared by many accounts); it
	// names it in Resolution.Unfollowed instead. Default 10.
	FollowLimit int `yaml:"follow_limit"`
	// MaxConnections sizes the connection pool: at most this many open,
	// and as many kept open while idle, so that the pipeline's workers
	// erasing at once each keep a session instead of opening one per
	// statement. Default 10, the pipeline's default worker count.
	MaxConnections int     `yaml:"max_connections"`
	Tables         []Table `yaml:"tables"`
}

// Table maps one table of the target.
type Table struct {
	Name       string `yaml:"name"`        // table, or schema.table
	PrimaryKey Key    `yaml:"primary_key"` // default "id"; a list for a composite key
	// Root marks the table whose rows are the subject's accounts (users):
	// a resolution reaching more than one of its rows is ambiguous.
	Root bool `yaml:"root"`
	// Identities maps identity types to the columns holding them.
	Identities map[lethe.IdentityType]string `yaml:"identities"`
	// Match overrides, per identity column, how stored values are
	// compared with the subject's (MatchExact, MatchCaseInsensitive,
	// MatchPhone); the default comes from the column's identity type.
	Match map[string]string `yaml:"match"`
	// Follow lists the identity columns whose values Resolve reads to
	// discover more identities (they identify one person). Unset: the
	// identity columns of root tables when the map has a root, every
	// identity column otherwise. Other columns only match rows.
	Follow []string `yaml:"follow"`
	// References link the table to its parents; a row belongs to the
	// subject if any reference points at a subject's row of the parent.
	References References   `yaml:"references"`
	Action     lethe.Action `yaml:"action"` // delete | pseudonymize | retain
	// Columns says how pseudonymize rewrites each column.
	Columns map[string]Strategy `yaml:"columns"`
	Reason  string              `yaml:"reason"` // required for retain
	Until   string              `yaml:"until"`  // optional for retain: YYYY-MM-DD or RFC 3339
	// Cascades lists the tables that ON DELETE CASCADE / SET NULL rules change when rows of this table go (CheckSchema).
	Cascades []string `yaml:"cascades"`
}

// Key is a primary key: one column, or a list of columns for a composite
// key (primary_key: [appointment_id, line_no]).
type Key []string

// UnmarshalYAML implements yaml.Unmarshaler: a column name or a list.
func (k *Key) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*k = Key{n.Value}
		return nil
	}
	var many []string
	if err := n.Decode(&many); err != nil {
		return err
	}
	*k = many
	return nil
}

// Reference says that Column of this table holds To of the parent Table.
type Reference struct {
	Column string `yaml:"column"`
	Table  string `yaml:"table"`
	To     string `yaml:"to"` // default: the parent's primary key
}

// References accepts one reference (a mapping) or several (a sequence),
// since most tables have one parent and a list would be noise.
type References []Reference

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *References) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var one Reference
		if err := n.Decode(&one); err != nil {
			return err
		}
		*r = References{one}
		return nil
	}
	var many []Reference
	if err := n.Decode(&many); err != nil {
		return err
	}
	*r = many
	return nil
}

// Strategy names how pseudonymize rewrites a column.
type Strategy struct {
	// Kind is one of StrategyNull, StrategyFixed, StrategyHash,
	// StrategyRedactEmail, StrategyRandom. YAML null decodes to the zero
	// Strategy, which means StrategyNull.
	Kind  string
	Value string // the value for StrategyFixed
}

// Pseudonymization strategies.
const (
	StrategyNull        = "null"         // set NULL
	StrategyFixed       = "fixed"        // set a fixed value: {fixed: "erased"}
	StrategyHash        = "hash"         // hex HMAC-SHA256(hash_key, value): stable pseudonym
	StrategyRedactEmail = "redact_email" // erased+<16 hex of the HMAC>@invalid
	StrategyRandom      = "random"       // 32 random hex digits
)

// UnmarshalYAML implements yaml.Unmarshaler: a strategy name, or
// {fixed: value}.
func (s *Strategy) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			*s = Strategy{Kind: StrategyNull}
			return nil
		}
		*s = Strategy{Kind: n.Value}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != StrategyFixed || n.Content[1].Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: a strategy mapping must be {fixed: value}", n.Line)
		}
		v := n.Content[1]
		if v.ShortTag() == "!!null" {
			*s = Strategy{Kind: StrategyNull}
			return nil
		}
		*s = Strategy{Kind: StrategyFixed, Value: v.Value}
		return nil
	}
	return fmt.Errorf("line %d: a strategy is a name (null, hash, redact_email, random) or {fixed: value}", n.Line)
}

func (s Strategy) kind() string {
	if s.Kind == "" {
		return StrategyNull
	}
	return s.Kind
}

const (
	defaultMaxConnections = 10
	maxMaxConnections     = 1000
	defaultBatchSize      = 1000
	maxBatchSize          = 100000
	minHashKeyLen         = 16
)

// ident is what a table or column name may look like. Names are quoted
// anyway; refusing anything else keeps odd names from reaching SQL at all.
var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

func validIdent(s string) bool { return ident.MatchString(s) }

func validTableName(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if !validIdent(p) {
			return false
		}
	}
	return true
}

// table is a validated Table with its links resolved.
type table struct {
	Table
	key      []string             // primary key columns
	rules    map[string]rule      // identity column -> how it matches
	follow   map[string]bool      // identity columns Resolve reads
	idTypes  []lethe.IdentityType // sorted, for stable queries
	parents  []link
	columns  []string // pseudonymized columns, sorted
	until    time.Time
	children []*table
}

// link is a resolved reference.
type link struct {
	column string
	parent *table
	to     string
}

// compile checks everything that can be checked without the database and
// returns the tables children-first, the order Erase needs.
func compile(target string, o *Options) ([]*table, error) {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("target %q: "+format, append([]any{target}, args...)...))
	}
	if _, ok := dialects[o.Driver]; !ok {
		fail("driver %q is not supported (use postgres, mysql or sqlite)", o.Driver)
	}
	if o.DSN == "" {
		fail("dsn is required")
	}
	switch {
	case o.BatchSize == 0:
		o.BatchSize = defaultBatchSize
	case o.BatchSize < 0 || o.BatchSize > maxBatchSize:
		fail("batch_size %d is out of range (1..%d)", o.BatchSize, maxBatchSize)
	}
	switch {
	case o.MaxConnections == 0:
		o.MaxConnections = defaultMaxConnections
	case o.MaxConnections < 0 || o.MaxConnections > maxMaxConnections:
		fail("max_connections %d is out of range (1..%d)", o.MaxConnections, maxMaxConnections)
	}
	if len(o.Tables) == 0 {
		fail("no tables")
	}
	for _, err := range connector.CheckMatchOptions(o.DefaultRegion, &o.FollowLimit) {
		fail("%s", err)
	}
	byName := map[string]*table{}
	var tables []*table
	for i := range o.Tables {
		t := &table{Table: o.Tables[i]}
		if !validTableName(t.Name) {
			fail("table #%d: name %q is not a plain identifier", i+1, t.Name)
			continue
		}
		if byName[t.Name] != nil {
			fail("table %q is listed twice", t.Name)
			continue
		}
		byName[t.Name] = t
		tables = append(tables, t)
	}
	usesKey := false
	for _, t := range tables {
		tfail := func(format string, args ...any) { fail("table %q: "+format, append([]any{t.Name}, args...)...) }
		t.key = t.PrimaryKey
		if len(t.key) == 0 {
			t.key = []string{"id"}
		}
		for _, k := range t.key {
			if !validIdent(k) {
				tfail("primary_key %q is not a plain identifier", k)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(t.key)))) != len(t.key) {
			tfail("primary_key lists a column twice")
		}
		for typ, col := range t.Identities {
			if !typ.Valid() {
				tfail("identity type %q is not supported (use email, phone, user_id or x-<name>)", typ)
			}
			if !validIdent(col) {
				tfail("identity column %q is not a plain identifier", col)
			}
			t.idTypes = append(t.idTypes, typ)
		}
		slices.Sort(t.idTypes)
		for _, r := range t.References {
			p := byName[r.Table]
			switch {
			case p == nil:
				tfail("references unknown table %q", r.Table)
				continue
			case !validIdent(r.Column):
				tfail("reference column %q is not a plain identifier", r.Column)
				continue
			}
			to := r.To
			if to == "" {
				switch len(p.PrimaryKey) {
				case 0:
					to = "id"
				case 1:
					to = p.PrimaryKey[0]
				default:
					tfail("references %q, whose primary key has several columns: say which column with to", r.Table)
					continue
				}
			}
			if !validIdent(to) {
				tfail("reference to %q.%q: not a plain identifier", r.Table, to)
				continue
			}
			t.parents = append(t.parents, link{column: r.Column, parent: p, to: to})
			p.children = append(p.children, t)
		}
		if len(t.Columns) > 0 && t.Action != lethe.ActionPseudonymize {
			tfail("columns apply only to action pseudonymize")
		}
		switch t.Action {
		case lethe.ActionDelete:
		case lethe.ActionRetain:
			if strings.TrimSpace(t.Reason) == "" {
				tfail("action retain needs a reason (the legal basis for keeping the rows)")
			}
			if t.Until != "" {
				u, err := parseUntil(t.Until)
				if err != nil {
					tfail("until %q is not a date (YYYY-MM-DD)", t.Until)
				}
				t.until = u
			}
		case lethe.ActionPseudonymize:
			if len(t.Columns) == 0 {
				tfail("action pseudonymize needs columns")
			}
			for col, st := range t.Columns {
				if !validIdent(col) {
					tfail("column %q is not a plain identifier", col)
					continue
				}
				if slices.Contains(t.key, col) {
					tfail("column %q is the primary key; rows are updated by it, so it cannot be pseudonymized", col)
				}
				switch st.kind() {
				case StrategyNull, StrategyFixed, StrategyRandom:
				case StrategyHash, StrategyRedactEmail:
					usesKey = true
				default:
					tfail("column %q: unknown strategy %q (use null, fixed, hash, redact_email or random)", col, st.Kind)
				}
				t.columns = append(t.columns, col)
			}
			slices.Sort(t.columns)
			// A pseudonymized row must stop matching the subject, or Verify
			// would fail and every re-run would rewrite (and re-count) it.
			// So every column that links the row to the subject is rewritten.
			for _, typ := range t.idTypes {
				if col := t.Identities[typ]; !hasKey(t.Columns, col) {
					tfail("pseudonymize must rewrite identity column %q (%s), or the rows still identify the subject", col, typ)
				}
			}
			for _, l := range t.parents {
				if !hasKey(t.Columns, l.column) {
					tfail("pseudonymize must rewrite reference column %q (to %q), or the rows stay linked to the subject", l.column, l.parent.Name)
				}
			}
		case "":
			tfail("action is required (delete, pseudonymize or retain)")
		default:
			tfail("action %q is not supported (use delete, pseudonymize or retain)", t.Action)
		}
	}
	compileMatching(tables, fail)
	if usesKey && len(o.HashKey) < minHashKeyLen {
		fail("hash_key of at least %d bytes is required by the hash and redact_email strategies", minHashKeyLen)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	order, err := childrenFirst(tables)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	for _, t := range tables {
		if !reachable(t, map[*table]bool{}) {
			fail("table %q: no identity reaches it (give it identities or a reference to a table that has them)", t.Name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return order, nil
}

// childrenFirst orders tables so every table comes before the tables it
// references, keeping the configured order where references allow it; a
// reference cycle is an error naming it.
func childrenFirst(tables []*table) ([]*table, error) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*table]int{}
	var order []*table
	var path []string
	var visit func(t *table) error
	// Post-order over children puts each table after all its descendants;
	// reversing that puts parents last.
	visit = func(t *table) error {
		switch state[t] {
		case done:
			return nil
		case visiting:
			i := 0
			for path[i] != t.Name {
				i++
			}
			return fmt.Errorf("reference cycle: %s -> %s", strings.Join(path[i:], " -> "), t.Name)
		}
		state[t] = visiting
		path = append(path, t.Name)
		for _, l := range t.parents {
			if err := visit(l.parent); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[t] = done
		order = append(order, t)
		return nil
	}
	for _, t := range tables {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	// order is parents-first; Erase needs the reverse.
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	return order, nil
}

func reachable(t *table, seen map[*table]bool) bool {
	if len(t.idTypes) > 0 {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	for _, l := range t.parents {
		if reachable(l.parent, seen) {
			return true
		}
	}
	return false
}

func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}
