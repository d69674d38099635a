package redisconn

import (
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// template is a key (or member, or pattern) with {identity_type}
// placeholders, split once at start so identity values are only ever
// substituted, never parsed.
type template struct {
	raw   string
	parts []part
}

type part struct {
	lit string
	typ lethe.IdentityType // set for a placeholder
}

// maxExpansions bounds the keys one template yields for one subject (a
// template with two placeholders multiplies the values of both).
const maxExpansions = 1000

func parseTemplate(s string) (template, error) {
	t := template{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("%q: unclosed {", s)
		}
		typ := lethe.IdentityType(rest[i+1 : i+j])
		if !typ.Valid() {
			return t, fmt.Errorf("%q: {%s} is not an identity type", s, typ)
		}
		t.parts = append(t.parts, part{typ: typ})
		rest = rest[i+j+1:]
	}
	return t, nil
}

func (t template) hasPlaceholder() bool {
	for _, p := range t.parts {
		if p.typ != "" {
			return true
		}
	}
	return false
}

// expand returns every string the template yields for the subject's
// values, with each value passed through esc (identity for keys, glob
// escaping for SCAN patterns). A placeholder whose type the subject lacks
// yields nothing.
func (t template) expand(v values, esc func(string) string) ([]string, error) {
	out := []string{""}
	for _, p := range t.parts {
		if p.typ == "" {
			for i := range out {
				out[i] += p.lit
			}
			continue
		}
		vals := v[p.typ]
		if len(vals) == 0 {
			return nil, nil
		}
		next := make([]string, 0, len(out)*len(vals))
		for _, o := range out {
			for _, val := range vals {
				next = append(next, o+esc(val))
			}
		}
		if len(next) > maxExpansions {
			return nil, fmt.Errorf("template %q yields more than %d keys for this subject", t.raw, maxExpansions)
		}
		out = next
	}
	return out, nil
}

// values are the subject's identity values by type.
type values map[lethe.IdentityType][]string

func same(s string) string { return s }

// globEscape escapes Redis glob metacharacters (* ? [ ] \) so an identity
// value in a SCAN pattern only ever matches itself: "a*b@x.com" must not
// match "aXYZb@x.com".
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
