package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file holds the YAML node decoder shared by the main configuration
// and by every connector's options (through Target.Decode). yaml.v3's own
// Decode reports "line 12: field dsnn not found in type sqlconn.Options"
// and its tag rules turn an expanded ${PORT} into a string that will not
// decode into an int; walking the nodes ourselves gives every error a field
// path, collects them all, checks unknown fields everywhere, and lets every
// time.Duration accept the "30d" form.

// plainKey is a mapping key that can be written after a dot in a path;
// anything else is quoted in brackets so paths stay unambiguous.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func joinKey(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// ---- ${VAR} expansion ------------------------------------------------------

// expandNode replaces ${VAR} in every scalar value under n, in place. Mapping
// keys are left alone: the file's structure is the operator's, only values
// come from the environment, and an expanded value is never parsed as YAML,
// so a variable cannot inject keys.
func expandNode(n *yaml.Node, path string, env func(string) (string, bool), errs *errorList) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandNode(c, path, env, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandNode(c, joinIndex(path, i), env, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandNode(n.Content[i+1], joinKey(path, n.Content[i].Value), env, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, problems := expandString(n.Value, env)
		for _, p := range problems {
			errs.add(path, n.Line, "%s", p)
		}
		if len(problems) > 0 || out == n.Value {
			return
		}
		n.Value = out
		// A plain scalar's tag was resolved from the text "${PORT}" (a
		// string); resolve it again from the expanded text so port: ${PORT}
		// decodes into an int wherever yaml.v3 itself decodes it. Quoted or
		// explicitly tagged scalars keep their tag. An empty expansion stays
		// an empty string rather than becoming null (which would silently
		// select the field's default).
		const fixed = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle | yaml.TaggedStyle
		if n.Style&fixed == 0 {
			n.Tag = ""
			if n.ShortTag() == "!!null" {
				n.Tag = "!!str"
			}
		}
	case yaml.AliasNode:
		// The anchored node is expanded where it is defined; expanding it
		// again here would turn an escaped "$$" into a lone "$".
	}
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandString expands ${VAR} and $$ in s. The problems it returns never
// quote s: it may be half secret.
func expandString(s string, env func(string) (string, bool)) (string, []string) {
	var (
		b        strings.Builder
		problems []string
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i++
		case i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				problems = append(problems, `unterminated "${" (write "$$" for a literal "$")`)
				return s, problems
			}
			name := s[i+2 : i+2+end]
			i += 2 + end
			if !varName.MatchString(name) {
				problems = append(problems, `invalid variable name in "${...}" (want letters, digits and "_")`)
				continue
			}
			v, ok := env(name)
			if !ok {
				problems = append(problems, fmt.Sprintf("environment variable %s is not set", name))
				continue
			}
			b.WriteString(v)
		default:
			// Refusing a lone "$" catches shell habits like $VAR, which
			// would otherwise pass through as literal text.
			problems = append(problems, `"$" must start "${VAR}" (write "$$" for a literal "$")`)
		}
	}
	return b.String(), problems
}

// ---- node decoding ---------------------------------------------------------

// nodeDecoder is implemented by types that decode themselves from a node
// (Target keeps its connector options as a node).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

type decoder struct {
	errs *errorList
	// lines maps field paths to file lines so validation errors, found
	// after decoding, can still point at the line. Nil when not wanted.
	lines map[string]int
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	nodeDecoderType     = reflect.TypeFor[nodeDecoder]()
)

// resolve follows documents and aliases to the node that holds content.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		default:
			return n
		}
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// decode fills v (settable) from n. Problems go to d.errs; decoding goes on
// past them so one run reports everything.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil || n.Kind == yaml.DocumentNode { // empty document
		return
	}
	if d.lines != nil && path != "" {
		d.lines[path] = n.Line
	}
	t := v.Type()

	if t == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// As in yaml.v3, which connectors are written against: null
		// clears references and leaves values (so "workers:" with nothing
		// under it keeps the defaults), and no unmarshaler is called.
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.SetZero()
		}
		return
	}

	if v.CanAddr() {
		switch a := v.Addr(); {
		case a.Type().Implements(nodeDecoderType):
			a.Interface().(nodeDecoder).decodeNode(d, n, path)
			return
		case a.Type().Implements(unmarshalerType):
			if err := a.Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
				d.errs.add(path, n.Line, "%v", err)
			}
			return
		}
	}

	if t == durationType {
		if !d.scalar(n, path) {
			return
		}
		dur, ok := ParseDuration(n.Value)
		if !ok {
			d.errs.add(path, n.Line, "must be a duration like 90s, 10m, 720h or 30d")
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) && t.Kind() != reflect.Pointer {
		if !d.scalar(n, path) {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			// The parser's message usually quotes the input; name the
			// type instead.
			d.errs.add(path, n.Line, "must be a valid %s", t)
		}
		return
	}

	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(path, n.Line, "must be a list, not %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), joinIndex(path, i))
		}
		v.Set(s)
	case reflect.String:
		if d.scalar(n, path) {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if !d.scalar(n, path) {
			return
		}
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errs.add(path, n.Line, "must be true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.scalar(n, path) {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, t.Bits())
		if err != nil {
			d.errs.add(path, n.Line, "%s", numError(err, "an integer"))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.scalar(n, path) {
			return
		}
		u, err := strconv.ParseUint(n.Value, 0, t.Bits())
		if err != nil {
			d.errs.add(path, n.Line, "%s", numError(err, "a non-negative integer"))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if !d.scalar(n, path) {
			return
		}
		f, err := strconv.ParseFloat(n.Value, t.Bits())
		if err != nil || math.IsNaN(f) {
			d.errs.add(path, n.Line, "%s", numError(err, "a number"))
			return
		}
		v.SetFloat(f)
	default:
		// Interfaces, arrays and the like: let yaml.v3 do it, without its
		// message, which quotes the value.
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errs.add(path, n.Line, "invalid value for %s", t)
		}
	}
}

func numError(err error, want string) string {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return "out of range"
	}
	return "must be " + want
}

// scalar reports whether n is a single value, recording an error if not.
func (d *decoder) scalar(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(path, n.Line, "must be a single value, not %s", kindName(n))
		return false
	}
	return true
}

// pair is one key/value of a mapping, after merge keys ("<<: *base") are
// flattened; merged pairs come first so the mapping's own keys win.
type pair struct {
	key, val *yaml.Node
	merged   bool
}

func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			srcs := []*yaml.Node{resolve(val)}
			if srcs[0].Kind == yaml.SequenceNode {
				srcs = srcs[0].Content
			}
			for _, s := range srcs {
				s = resolve(s)
				if s.Kind != yaml.MappingNode {
					d.errs.add(path, k.Line, "merge key \"<<\" needs a mapping or a list of mappings")
					continue
				}
				for _, p := range d.pairs(s, path) {
					p.merged = true
					merged = append(merged, p)
				}
			}
			continue
		}
		own = append(own, pair{key: k, val: val})
	}
	// Duplicate keys are almost always a paste error, and which one wins
	// is not obvious; refuse them.
	seen := map[string]int{}
	for _, p := range own {
		if first, ok := seen[p.key.Value]; ok {
			d.errs.add(joinKey(path, p.key.Value), p.key.Line, "duplicate key (first at line %d)", first)
			continue
		}
		seen[p.key.Value] = p.key.Line
	}
	return append(merged, own...)
}

type field struct {
	name  string
	index []int
}

// structFields lists the YAML fields of t the way yaml.v3 names them: the
// tag's name, else the lower-cased Go name; ",inline" structs are flattened
// and "-" is skipped.
func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for _, sub := range structFields(f.Type) {
				out = append(out, field{name: sub.name, index: append([]int{i}, sub.index...)})
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{name: name, index: []int{i}})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, n.Line, "must be a mapping, not %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	byName := make(map[string][]int, len(fields))
	names := make([]string, len(fields))
	for i, f := range fields {
		byName[f.name] = f.index
		names[i] = f.name
	}
	for _, p := range d.pairs(n, path) {
		fp := joinKey(path, p.key.Value)
		idx, ok := byName[p.key.Value]
		if !ok {
			d.errs.add(fp, p.key.Line, "unknown field (known: %s)", strings.Join(names, ", "))
			continue
		}
		d.decode(p.val, v.FieldByIndex(idx), fp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errs.add(path, n.Line, "invalid value for %s", t)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, n.Line, "must be a mapping, not %s", kindName(n))
		return
	}
	// A mapping in the file replaces the default map instead of merging
	// into it: "only listed regulations are accepted" must mean exactly
	// the listed ones.
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		k := reflect.New(t.Key()).Elem()
		k.SetString(p.key.Value)
		e := reflect.New(t.Elem()).Elem()
		d.decode(p.val, e, joinKey(path, p.key.Value))
		m.SetMapIndex(k, e)
	}
	v.Set(m)
}

// ParseDuration parses a Go duration string ("90s", "1h30m") or one that
// starts with whole days ("30d", "1d12h"): response periods and retention
// are thought of in days, and Go has no day unit.
func ParseDuration(s string) (time.Duration, bool) {
	const day = 24 * time.Hour
	rest := s
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 { // no Go unit contains a 'd'
		digits := s[:i]
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return 0, false
		}
		days, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || days > int64(math.MaxInt64/day) {
			return 0, false
		}
		total = time.Duration(days) * day
		rest = s[i+1:]
		if rest == "" {
			return total, true
		}
		if rest[0] == '-' || rest[0] == '+' {
			return 0, false
		}
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r > math.MaxInt64-total {
		return 0, false
	}
	return total + r, true
}

// DecodeFile decodes data, one YAML document that is not the configuration
// file (an HTTP recipe), into v with the configuration's rules: unknown
// keys and duplicate keys are errors, every error carries its path under
// prefix and its line, and durations take the "30d" form. ${VAR} is not
// expanded: such files describe an API, and settings come from the data
// map. Errors are Errors. lines maps each decoded field's path to its line,
// so the caller's own checks can name the line too.
func DecodeFile(data []byte, prefix string, v any) (lines map[string]int, err error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("config: DecodeFile needs a non-nil pointer, got %T", v)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// yaml.v3 syntax errors name a line and a token kind, not values.
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	var errs errorList
	if root.Kind == 0 {
		errs.add(prefix, 0, "is empty")
		return nil, errs.err()
	}
	lines = map[string]int{}
	d := decoder{errs: &errs, lines: lines}
	d.decode(&root, rv.Elem(), prefix)
	return lines, errs.err()
}
