package redisconn

import (
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// Options configure one Redis target; see the package documentation for
// the YAML form.
type Options struct {
	URL string `yaml:"url"` // redis://[user:pass@]host:port/db or rediss://; required
	// KeyPrefix is put before every key and pattern (a namespace shared
	// by the application's keys). Default none.
	KeyPrefix  string   `yaml:"key_prefix"`
	Keys       []string `yaml:"keys"`        // key templates deleted whole
	Hashes     []Hash   `yaml:"hashes"`      // fields deleted from hashes
	Sets       []Member `yaml:"sets"`        // members removed from sets
	SortedSets []Member `yaml:"sorted_sets"` // members removed from sorted sets
	Scans      []Scan   `yaml:"scans"`       // keys matched by SCAN, deleted
	Resolve    []Link   `yaml:"resolve"`     // keys holding linked identities
	// DefaultRegion (ISO 3166, e.g. "GB") reads phones stored as national
	// numbers; without it only international forms match.
	DefaultRegion string `yaml:"default_region"`
	// FollowLimit: Resolve never follows a value that reaches more than
	// this many root records (see Link.Root). Default 10.
	FollowLimit int `yaml:"follow_limit"`
}

// Hash deletes Fields (templates) from the hash at Key (a template).
type Hash struct {
	Key    string   `yaml:"key"`
	Fields []string `yaml:"fields"`
	Match  string   `yaml:"match"` // exact | case_insensitive | phone; default by type
}

// Member removes Member (a template, usually just "{email}") from the set
// or sorted set at Key.
type Member struct {
	Key    string `yaml:"key"`
	Member string `yaml:"member"`
	Match  string `yaml:"match"` // exact | case_insensitive | phone; default by type
}

// Scan deletes every key matching Pattern: a Redis glob in which the
// placeholders' values are escaped, so only the operator's own * ? [ ]
// are wildcards. Scans are bounded: Count keys per SCAN call (a hint),
// at most MaxIterations calls per pattern; a keyspace too large for that
// is an error, never a silent partial erase.
type Scan struct {
	Pattern       string `yaml:"pattern"`
	Count         int64  `yaml:"count"`          // default 1000
	MaxIterations int    `yaml:"max_iterations"` // default 10000
}

// Link says that the string at Key (or, with Field, that field of the hash
// at Key; or every member of the set at Key) holds an identity of Type
// linked to the subject: the email finds the user id. Key may be fixed
// when Field names an identity (an index hash: HGET email_index {email}).
type Link struct {
	Key   string             `yaml:"key"`
	Field string             `yaml:"field"`
	Type  lethe.IdentityType `yaml:"type"`
	Match string             `yaml:"match"` // for Field, as in Hash
	// Root says the values this link yields are the subject's accounts
	// (user ids): distinct values are distinct root records.
	Root bool `yaml:"root"`
}

const (
	defaultScanCount     = 1000
	defaultMaxIterations = 10000
)

// object is one compiled entry of the map: what Plan, Erase and Verify
// walk, in the order of the map.
type object struct {
	kind   string // key | hash | set | zset | scan
	name   string // the report's object: the template as written
	key    template
	fields []template  // hash
	fmatch []itemMatch // hash: per field
	member template    // set, zset
	mmatch itemMatch   // set, zset
	scan   Scan
}

type link struct {
	name       string // the entry as written, for Unfollowed and RootRecords
	key, field template
	fmatch     itemMatch
	typ        lethe.IdentityType
	root       bool
}

func compile(o *Options) ([]object, []link, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.URL == "" {
		bad("url is required")
	}
	for _, err := range connector.CheckMatchOptions(o.DefaultRegion, &o.FollowLimit) {
		bad("%s", err)
	}
	itemRule := func(where string, t template, option string) itemMatch {
		m, err := compileMatch(t, option)
		if err != nil {
			bad("%s: %v", where, err)
		}
		return m
	}
	tmpl := func(where, s string, needPlaceholder bool) template {
		if s == "" {
			bad("%s: is empty", where)
			return template{}
		}
		t, err := parseTemplate(o.KeyPrefix + s)
		if err != nil {
			bad("%s: %v", where, err)
		}
		if needPlaceholder && err == nil && !t.hasPlaceholder() {
			// A fixed key would be deleted for every subject.
			bad("%s: %q names no identity ({email}, {user_id}, ...)", where, s)
		}
		return t
	}
	member := func(where, s string) template {
		if s == "" {
			bad("%s: is empty", where)
			return template{}
		}
		t, err := parseTemplate(s)
		if err != nil {
			bad("%s: %v", where, err)
		} else if !t.hasPlaceholder() {
			bad("%s: %q names no identity", where, s)
		}
		return t
	}
	var objs []object
	for i, k := range o.Keys {
		objs = append(objs, object{kind: "key", name: k, key: tmpl(fmt.Sprintf("keys[%d]", i), k, true)})
	}
	for i, h := range o.Hashes {
		where := fmt.Sprintf("hashes[%d]", i)
		ob := object{kind: "hash", name: h.Key, key: tmpl(where+".key", h.Key, false)}
		if len(h.Fields) == 0 {
			bad("%s.fields: list the fields to delete", where)
		}
		anyPlaceholder := ob.key.hasPlaceholder()
		for j, f := range h.Fields {
			t, err := parseTemplate(f)
			if err != nil || f == "" {
				bad("%s.fields[%d]: invalid field %q", where, j, f)
			}
			anyPlaceholder = anyPlaceholder || t.hasPlaceholder()
			ob.fields = append(ob.fields, t)
			ob.fmatch = append(ob.fmatch, itemRule(fmt.Sprintf("%s.fields[%d]", where, j), t, h.Match))
			ob.name += " " + f
		}
		if !anyPlaceholder {
			bad("%s: neither key nor fields name an identity", where)
		}
		objs = append(objs, ob)
	}
	for i, m := range o.Sets {
		where := fmt.Sprintf("sets[%d]", i)
		ob := object{kind: "set", name: m.Key + " " + m.Member, key: tmpl(where+".key", m.Key, false), member: member(where+".member", m.Member)}
		ob.mmatch = itemRule(where+".member", ob.member, m.Match)
		objs = append(objs, ob)
	}
	for i, m := range o.SortedSets {
		where := fmt.Sprintf("sorted_sets[%d]", i)
		ob := object{kind: "zset", name: m.Key + " " + m.Member, key: tmpl(where+".key", m.Key, false), member: member(where+".member", m.Member)}
		ob.mmatch = itemRule(where+".member", ob.member, m.Match)
		objs = append(objs, ob)
	}
	for i, s := range o.Scans {
		where := fmt.Sprintf("scans[%d]", i)
		if s.Count == 0 {
			s.Count = defaultScanCount
		}
		if s.MaxIterations == 0 {
			s.MaxIterations = defaultMaxIterations
		}
		if s.Count < 1 || s.Count > 100000 || s.MaxIterations < 1 {
			bad("%s: count must be 1..100000 and max_iterations at least 1", where)
		}
		// The prefix is the operator's literal text, not a glob: escape it.
		t, err := parseTemplate(s.Pattern)
		if err != nil || s.Pattern == "" {
			bad("%s.pattern: invalid pattern", where)
		} else if !t.hasPlaceholder() {
			bad("%s.pattern: %q names no identity", where, s.Pattern)
		}
		if o.KeyPrefix != "" {
			t.parts = append([]part{{lit: globEscape(o.KeyPrefix)}}, t.parts...)
		}
		objs = append(objs, object{kind: "scan", name: s.Pattern, key: t, scan: s})
	}
	var links []link
	for i, l := range o.Resolve {
		where := fmt.Sprintf("resolve[%d]", i)
		ln := link{name: l.Key, typ: l.Type, root: l.Root}
		if l.Field != "" {
			ln.name += " " + l.Field
			t, err := parseTemplate(l.Field)
			if err != nil {
				bad("%s.field: %v", where, err)
			}
			ln.field = t
			ln.fmatch = itemRule(where+".field", t, l.Match)
		}
		// A fixed key is an index when the field names the identity.
		ln.key = tmpl(where+".key", l.Key, !ln.field.hasPlaceholder())
		if !l.Type.Valid() {
			bad("%s.type: %q is not an identity type", where, l.Type)
		}
		links = append(links, ln)
	}
	if len(objs) == 0 {
		bad("the map lists nothing to erase (keys, hashes, sets, sorted_sets or scans)")
	}
	return objs, links, errors.Join(errs...)
}
