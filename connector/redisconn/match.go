package redisconn

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe"
)

// Match rules for a hash field or set member template (see the package
// documentation).
const (
	MatchExact           = "exact"
	MatchCaseInsensitive = "case_insensitive"
	MatchPhone           = "phone"
)

// itemMatch says how the items (hash fields, set members) a template
// names are found: by the expanded template itself (exact), or, for a
// template of one placeholder between literal text, by scanning the key
// with a glob that every stored form of the value matches and keeping the
// items whose canonical form is the subject's.
type itemMatch struct {
	rule           string
	prefix, suffix string
	typ            lethe.IdentityType
}

// compileMatch returns the rule for item template t given the entry's
// match option; "" when t is matched exactly.
func compileMatch(t template, option string) (itemMatch, error) {
	var ph []part
	for _, p := range t.parts {
		if p.typ != "" {
			ph = append(ph, p)
		}
	}
	rule := option
	if rule == "" && len(ph) == 1 {
		switch ph[0].typ {
		case lethe.IdentityEmail:
			rule = MatchCaseInsensitive
		case lethe.IdentityPhone:
			rule = MatchPhone
		}
	}
	switch rule {
	case "", MatchExact:
		return itemMatch{}, nil
	case MatchCaseInsensitive, MatchPhone:
	default:
		return itemMatch{}, fmt.Errorf("match %q is not a rule (use exact, case_insensitive or phone)", rule)
	}
	if len(ph) != 1 {
		return itemMatch{}, fmt.Errorf("match %s needs a template with exactly one placeholder", rule)
	}
	m := itemMatch{rule: rule, typ: ph[0].typ}
	before := true
	for _, p := range t.parts {
		switch {
		case p.typ != "":
			before = false
		case before:
			m.prefix += p.lit
		default:
			m.suffix += p.lit
		}
	}
	return m, nil
}

// glob returns a SCAN pattern every stored form of value matches:
// letters as [aA] for case-insensitive values, the national number's
// digits with anything between them for phones.
func (m itemMatch) glob(value string) (string, bool) {
	var b strings.Builder
	b.WriteString(globEscape(m.prefix))
	switch m.rule {
	case MatchCaseInsensitive:
		// Stored values may carry spaces around them (canonical trims).
		b.WriteByte('*')
		for _, r := range value {
			lo, up := unicode.ToLower(r), unicode.ToUpper(r)
			if lo != up {
				b.WriteString("[" + string(lo) + string(up) + "]")
				continue
			}
			b.WriteString(globEscape(string(r)))
		}
		b.WriteByte('*')
	case MatchPhone:
		nsn, ok := lethe.PhoneNationalNumber(value)
		if !ok {
			return "", false
		}
		b.WriteByte('*')
		for _, d := range nsn {
			b.WriteRune(d)
			b.WriteByte('*')
		}
	}
	b.WriteString(globEscape(m.suffix))
	return b.String(), true
}

// canonical returns the value an item holds in canonical form, and whether
// the item has the template's shape at all.
func (m itemMatch) canonical(item, region string) (string, bool) {
	if !strings.HasPrefix(item, m.prefix) || !strings.HasSuffix(item[len(m.prefix):], m.suffix) {
		return "", false
	}
	v := item[len(m.prefix) : len(item)-len(m.suffix)]
	if m.rule == MatchPhone {
		return lethe.CanonicalPhone(v, region)
	}
	v = strings.ToLower(strings.TrimSpace(v))
	return v, v != ""
}

// maxItemScans bounds the HSCAN/SSCAN/ZSCAN calls one item match makes on
// one key; a key too large for that is an error, never a partial match.
const maxItemScans = 10000

// scanItems returns the items of the hash, set or sorted set at key whose
// canonical form is one of vals.
func (c *Connector) scanItems(ctx context.Context, kind, key string, m itemMatch, vals []string) ([]string, error) {
	want := map[string]bool{}
	for _, v := range vals {
		want[v] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range vals {
		pat, ok := m.glob(v)
		if !ok {
			continue
		}
		var cursor uint64
		for i := 0; ; i++ {
			if i == maxItemScans {
				return nil, &scanLimit{iterations: i}
			}
			var page []string
			var err error
			switch kind {
			case "hash":
				page, cursor, err = c.rdb.HScan(ctx, key, cursor, pat, defaultScanCount).Result()
			case "set":
				page, cursor, err = c.rdb.SScan(ctx, key, cursor, pat, defaultScanCount).Result()
			case "zset":
				page, cursor, err = c.rdb.ZScan(ctx, key, cursor, pat, defaultScanCount).Result()
			}
			if err != nil && err != redis.Nil {
				return nil, err
			}
			// HSCAN and ZSCAN return field/value and member/score pairs.
			step := 1
			if kind != "set" {
				step = 2
			}
			for j := 0; j < len(page); j += step {
				it := page[j]
				if cv, ok := m.canonical(it, c.region); ok && want[cv] && !seen[it] {
					seen[it] = true
					out = append(out, it)
				}
			}
			if cursor == 0 {
				break
			}
		}
	}
	return out, nil
}
