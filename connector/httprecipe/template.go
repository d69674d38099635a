package httprecipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// A template is text with {{name}} placeholders. Nothing else is evaluated:
// a recipe describes calls, it does not run code.
type template struct {
	parts []tplPart
}

type tplPart struct {
	lit  string
	name string // "" for a literal part
}

var varName = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)?$`)

func parseTemplate(s string) (template, error) {
	var t template
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			if strings.Contains(s, "}}") {
				return t, errors.New(`has "}}" without "{{"`)
			}
			t.parts = append(t.parts, tplPart{lit: s})
			break
		}
		if i > 0 {
			if strings.Contains(s[:i], "}}") {
				return t, errors.New(`has "}}" without "{{"`)
			}
			t.parts = append(t.parts, tplPart{lit: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return t, errors.New(`has "{{" without "}}"`)
		}
		name := strings.TrimSpace(s[i+2 : i+j])
		if !varName.MatchString(name) {
			return t, fmt.Errorf("{{%s}} is not a variable name", name)
		}
		t.parts = append(t.parts, tplPart{name: name})
		s = s[i+j+2:]
	}
	return t, nil
}

func (t template) names() []string {
	var out []string
	for _, p := range t.parts {
		if p.name != "" {
			out = append(out, p.name)
		}
	}
	return out
}

// single returns the variable name when the template is exactly one
// placeholder.
func (t template) single() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].name != "" {
		return t.parts[0].name, true
	}
	return "", false
}

// key is one thing an erase call names: an identity's value or a vendor
// record's id, with the vendor's name for its kind.
type key struct {
	Type  string // lethe identity type, or the lookup's kind
	As    string
	Value string
}

// env holds the values templates are filled from.
type env struct {
	strs map[string]string
	list []string // {{values}}
	keys []key    // {{keys}}, for $each
}

func (e env) lookup(name string) (string, error) {
	if name == "values" {
		return strings.Join(e.list, ","), nil
	}
	v, ok := e.strs[name]
	if !ok {
		return "", fmt.Errorf("no value for {{%s}}", name)
	}
	return v, nil
}

func (e env) with(kv ...string) env {
	out := env{strs: make(map[string]string, len(e.strs)+len(kv)/2), list: e.list, keys: e.keys}
	for k, v := range e.strs {
		out.strs[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.strs[kv[i]] = kv[i+1]
	}
	return out
}

// render fills t with escape applied to each value.
func (t template) render(e env, escape func(string) string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		v, err := e.lookup(p.name)
		if err != nil {
			return "", err
		}
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func renderString(s string, e env) (string, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return "", err
	}
	return t.render(e, nil)
}

// renderPath fills a path template: values are path-escaped before the
// "?" and query-escaped after it, so no value can add a path segment or a
// query parameter.
func renderPath(s string, e env) (string, error) {
	pathPart, query, hasQuery := strings.Cut(s, "?")
	t, err := parseTemplate(pathPart)
	if err != nil {
		return "", err
	}
	out, err := t.render(e, url.PathEscape)
	if err != nil || !hasQuery {
		return out, err
	}
	t, err = parseTemplate(query)
	if err != nil {
		return "", err
	}
	q, err := t.render(e, url.QueryEscape)
	return out + "?" + q, err
}

// ---- bodies ----------------------------------------------------------------

// bodyTemplate is a JSON body written as YAML. Strings are templates; a
// string that is only {{values}} becomes the list of values; a mapping
// {$each: "{{keys}}", $item: ...} becomes one $item per key, with
// {{item.value}}, {{item.as}} and {{item.type}}. Other scalars (numbers,
// booleans, null) are sent as written.
type bodyTemplate struct {
	raw  json.RawMessage // a literal scalar
	str  *template
	list bool // {{values}}
	obj  []bodyField
	arr  []*bodyTemplate
	each *bodyTemplate // the $item of a $each
}

type bodyField struct {
	key template
	val *bodyTemplate
}

type bodyError struct {
	line int
	msg  string
}

// parseBody parses n, checking variables against v.
func parseBody(n *yaml.Node, v vars) (*bodyTemplate, []bodyError) {
	var errs []bodyError
	bad := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, bodyError{n.Line, fmt.Sprintf(format, args...)})
	}
	checkVars := func(n *yaml.Node, t template, v vars) {
		for _, name := range t.names() {
			if name == "keys" {
				bad(n, "{{keys}} is only for $each")
			} else if !v[name] {
				bad(n, "unknown variable {{%s}} here (known: %s)", name, v.list())
			}
		}
	}
	var walk func(n *yaml.Node, v vars) *bodyTemplate
	walk = func(n *yaml.Node, v vars) *bodyTemplate {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.ScalarNode:
			if n.ShortTag() != "!!str" {
				var x any
				if err := n.Decode(&x); err != nil {
					bad(n, "is not a JSON value")
					return &bodyTemplate{raw: json.RawMessage("null")}
				}
				b, err := json.Marshal(x)
				if err != nil {
					bad(n, "is not a JSON value")
				}
				return &bodyTemplate{raw: b}
			}
			t, err := parseTemplate(n.Value)
			if err != nil {
				bad(n, "%v", err)
				return &bodyTemplate{raw: json.RawMessage(`""`)}
			}
			if name, ok := t.single(); ok && name == "values" {
				return &bodyTemplate{list: true}
			}
			checkVars(n, t, v)
			return &bodyTemplate{str: &t}
		case yaml.SequenceNode:
			out := &bodyTemplate{arr: []*bodyTemplate{}}
			for _, c := range n.Content {
				out.arr = append(out.arr, walk(c, v))
			}
			return out
		case yaml.MappingNode:
			if len(n.Content) >= 2 && n.Content[0].Value == "$each" {
				if len(n.Content) != 4 || n.Content[2].Value != "$item" || n.Content[1].Value != "{{keys}}" {
					bad(n, `$each takes "{{keys}}" and a $item, nothing else`)
					return &bodyTemplate{raw: json.RawMessage("[]")}
				}
				if !v["keys"] {
					bad(n, "$each over {{keys}} is only for erase steps")
				}
				return &bodyTemplate{each: walk(n.Content[3], v.with("item.value", "item.as", "item.type"))}
			}
			out := &bodyTemplate{obj: []bodyField{}}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, err := parseTemplate(n.Content[i].Value)
				if err != nil {
					bad(n.Content[i], "%v", err)
					continue
				}
				checkVars(n.Content[i], k, v)
				out.obj = append(out.obj, bodyField{key: k, val: walk(n.Content[i+1], v)})
			}
			return out
		default:
			bad(n, "is not a JSON value")
			return &bodyTemplate{raw: json.RawMessage("null")}
		}
	}
	return walk(n, v), errs
}

// render writes the body as JSON, keys in the recipe's order, so the bytes
// (which a signature covers) do not depend on map order.
func (b *bodyTemplate) render(e env, extra [][2]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := b.write(&buf, e, extra); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (b *bodyTemplate) write(buf *bytes.Buffer, e env, extra [][2]string) error {
	str := func(s string) {
		enc, _ := json.Marshal(s)
		buf.Write(enc)
	}
	switch {
	case b.raw != nil:
		buf.Write(b.raw)
	case b.str != nil:
		s, err := b.str.render(e, nil)
		if err != nil {
			return err
		}
		str(s)
	case b.list:
		buf.WriteByte('[')
		for i, v := range e.list {
			if i > 0 {
				buf.WriteByte(',')
			}
			str(v)
		}
		buf.WriteByte(']')
	case b.each != nil:
		buf.WriteByte('[')
		for i, k := range e.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := b.each.write(buf, e.with("item.value", k.Value, "item.as", k.As, "item.type", k.Type), nil); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case b.obj != nil:
		buf.WriteByte('{')
		n := 0
		for _, f := range b.obj {
			if f.val.str != nil {
				// The first page of a cursor lookup has no cursor: its
				// field is left out, not sent empty.
				if name, ok := f.val.str.single(); ok && name == "cursor" && e.strs["cursor"] == "" {
					continue
				}
			}
			k, err := f.key.render(e, nil)
			if err != nil {
				return err
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			str(k)
			buf.WriteByte(':')
			if err := f.val.write(buf, e, nil); err != nil {
				return err
			}
		}
		for _, kv := range extra {
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			str(kv[0])
			buf.WriteByte(':')
			str(kv[1])
		}
		buf.WriteByte('}')
	case b.arr != nil:
		buf.WriteByte('[')
		for i, c := range b.arr {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := c.write(buf, e, nil); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		buf.WriteString("null")
	}
	return nil
}

// ---- paths into answers ----------------------------------------------------

// jsonPath is the part of JSONPath recipes need: $, .name, ['name'], [n],
// [*] (every element or member) and [?field==value] / [?field!=value]
// (the elements of a list whose field is, or is not, value).
type jsonPath []pathStep

type pathStep struct {
	name  string
	index int
	all   bool
	isIdx bool
	// A filter [?field==value] or [?field!=value] keeps the elements of
	// a list whose field (a scalar) equals, or does not equal, value.
	filter  string
	value   string
	negated bool
}

func compilePath(s string) (jsonPath, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, errors.New(`must be a path starting with "$" (such as $.data.id or $.users[*].id)`)
	}
	var p jsonPath
	rest := s[1:]
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "[*]"):
			p = append(p, pathStep{all: true})
			rest = rest[3:]
		case strings.HasPrefix(rest, "[?"):
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return nil, errors.New(`has "[?" without "]"`)
			}
			expr := rest[2:j]
			op, neg := "==", false
			if strings.Contains(expr, "!=") {
				op, neg = "!=", true
			}
			field, val, ok := strings.Cut(expr, op)
			field = strings.TrimPrefix(strings.TrimSpace(field), "@.")
			val = strings.Trim(strings.TrimSpace(val), "'\"")
			if !ok || field == "" || strings.ContainsAny(field, ".[") {
				return nil, fmt.Errorf("[?%s] must be [?field==value] or [?field!=value]", expr)
			}
			p = append(p, pathStep{filter: field, value: val, negated: neg})
			rest = rest[j+1:]
		case strings.HasPrefix(rest, "['"):
			j := strings.Index(rest[2:], "']")
			if j < 0 {
				return nil, errors.New(`has "['" without "']"`)
			}
			p = append(p, pathStep{name: rest[2 : 2+j]})
			rest = rest[2+j+2:]
		case strings.HasPrefix(rest, "["):
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return nil, errors.New(`has "[" without "]"`)
			}
			n, err := strconv.Atoi(rest[1:j])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("[%s] is not an index", rest[1:j])
			}
			p = append(p, pathStep{index: n, isIdx: true})
			rest = rest[j+1:]
		case strings.HasPrefix(rest, ".*"):
			p = append(p, pathStep{all: true})
			rest = rest[2:]
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			j := strings.IndexAny(rest, ".[")
			if j < 0 {
				j = len(rest)
			}
			if j == 0 {
				return nil, errors.New("has an empty name")
			}
			p = append(p, pathStep{name: rest[:j]})
			rest = rest[j:]
		default:
			return nil, fmt.Errorf("cannot read %q", rest)
		}
	}
	return p, nil
}

// eval returns every value p reaches in doc (decoded with UseNumber).
func (p jsonPath) eval(doc any) []any {
	cur := []any{doc}
	for _, st := range p {
		var next []any
		for _, v := range cur {
			if st.filter != "" {
				list, _ := v.([]any)
				for _, el := range list {
					m, _ := el.(map[string]any)
					got, ok := scalar(m[st.filter])
					if (ok && got == st.value) != st.negated {
						next = append(next, el)
					}
				}
				continue
			}
			switch x := v.(type) {
			case map[string]any:
				if st.all {
					for _, k := range sortedKeys(x) {
						next = append(next, x[k])
					}
				} else if !st.isIdx {
					if c, ok := x[st.name]; ok {
						next = append(next, c)
					}
				}
			case []any:
				if st.all {
					next = append(next, x...)
				} else if st.isIdx && st.index < len(x) {
					next = append(next, x[st.index])
				}
			}
		}
		cur = next
	}
	return cur
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// scalar renders a JSON scalar as text; ok is false for objects, arrays
// and null.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// evalPath compiles (checked at load) and evaluates.
func evalPath(path string, doc any) []any {
	p, err := compilePath(path)
	if err != nil {
		return nil
	}
	return p.eval(doc)
}
