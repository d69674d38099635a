package redisconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/redact"
)

// Kind is the connector kind of Redis targets in the data map.
const Kind = "redis"

// Info returns the registry entry for Redis targets.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(ctx context.Context, t connector.Target) (connector.Connector, error) {
		return New(ctx, t)
	}}
}

// Connector erases a subject's keys, hash fields and set members from one
// Redis server.
type Connector struct {
	name    string
	rdb     *redis.Client
	objects []object
	links   []link
	region  string // default_region
	follow  int    // follow_limit
}

var (
	_ connector.Connector = (*Connector)(nil)
	_ connector.Validator = (*Connector)(nil)
	_ connector.Closer    = (*Connector)(nil)
)

// New decodes and checks the target's options and creates the client. It
// does not connect: Validate does.
func New(_ context.Context, t connector.Target) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return Open(t.Name, o)
}

// Open is New for options already decoded.
func Open(name string, o Options) (*Connector, error) {
	objs, links, err := compile(&o)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		// Not the URL itself: it may hold a password.
		return nil, fmt.Errorf("target %q: url is not a redis:// or rediss:// URL", name)
	}
	return &Connector{name: name, rdb: redis.NewClient(opts), objects: objs, links: links,
		region: o.DefaultRegion, follow: o.FollowLimit}, nil
}

// Close closes the client.
func (c *Connector) Close() error { return c.rdb.Close() }

// Validate checks that the server answers.
func (c *Connector) Validate(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("target %q: connect: %w", c.name, err)
	}
	return nil
}

func valuesOf(ids []lethe.Identity) values {
	v := values{}
	for _, id := range ids {
		if id.Value != "" && !slices.Contains(v[id.Type], id.Value) {
			v[id.Type] = append(v[id.Type], id.Value)
		}
	}
	return v
}

// fail wraps a Redis error with the object's name (a template, never a
// key: keys hold identity values). Context errors stay matchable.
func (c *Connector) fail(op string, ob *object, err error) error {
	name := ""
	if ob != nil {
		name = fmt.Sprintf(" %s %q", ob.kind, ob.name)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("target %q: %s%s: %w", c.name, op, name, err)
	}
	var se *scanLimit
	if errors.As(err, &se) {
		return fmt.Errorf("target %q: %s%s: %w", c.name, op, name, err)
	}
	// Redis error texts name commands and types, not keys; redact and cut
	// them anyway.
	return fmt.Errorf("target %q: %s%s: %s", c.name, op, name, redact.String(err.Error(), nil))
}

type scanLimit struct{ iterations int }

func (e *scanLimit) Error() string {
	return fmt.Sprintf("SCAN did not finish within %d iterations; raise max_iterations or count", e.iterations)
}

// pairs expands an object's key and its second template (field or member)
// into (key, item) pairs.
func pairs(keys, items []string) [][2]string {
	var out [][2]string
	for _, k := range keys {
		for _, it := range items {
			out = append(out, [2]string{k, it})
		}
	}
	return out
}

// items returns the subject's keys of ob and, for hashes and sets, the
// (key, field or member) pairs to act on: the expanded template for exact
// items, the stored items whose canonical form is the subject's otherwise.
// A key without items is left out, so a template whose identity type the
// subject lacks yields no work (and no SREM without members).
func (c *Connector) items(ctx context.Context, ob *object, v values) (keys []string, items [][2]string, err error) {
	keys, err = ob.key.expand(v, same)
	if err != nil || len(keys) == 0 {
		return nil, nil, err
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if ob.kind == "key" {
		return keys, nil, nil
	}
	tmpls, rules := ob.fields, ob.fmatch
	if ob.kind != "hash" {
		tmpls, rules = []template{ob.member}, []itemMatch{ob.mmatch}
	}
	seen := map[[2]string]bool{}
	for _, k := range keys {
		for i, t := range tmpls {
			var its []string
			if rules[i].rule == "" {
				if its, err = t.expand(v, same); err != nil {
					return nil, nil, err
				}
			} else if its, err = c.scanItems(ctx, ob.kind, k, rules[i], v[rules[i].typ]); err != nil {
				return nil, nil, err
			}
			for _, it := range its {
				if p := [2]string{k, it}; !seen[p] {
					seen[p] = true
					items = append(items, p)
				}
			}
		}
	}
	var withItems []string
	for _, k := range keys {
		if slices.ContainsFunc(items, func(p [2]string) bool { return p[0] == k }) {
			withItems = append(withItems, k)
		}
	}
	return withItems, items, nil
}

// count returns how many of the subject's keys, fields or members ob
// holds now.
func (c *Connector) count(ctx context.Context, ob *object, v values) (int64, error) {
	if ob.kind == "scan" {
		var n int64
		err := c.scan(ctx, ob, v, func(keys []string) error { n += int64(len(keys)); return nil })
		return n, err
	}
	keys, items, err := c.items(ctx, ob, v)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	if ob.kind == "key" {
		return c.rdb.Exists(ctx, keys...).Result()
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]redis.Cmder, len(items))
	for i, p := range items {
		switch ob.kind {
		case "hash":
			cmds[i] = pipe.HExists(ctx, p[0], p[1])
		case "set":
			cmds[i] = pipe.SIsMember(ctx, p[0], p[1])
		case "zset":
			cmds[i] = pipe.ZScore(ctx, p[0], p[1])
		}
	}
	if len(cmds) == 0 {
		return 0, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	var n int64
	for _, cmd := range cmds {
		switch cmd := cmd.(type) {
		case *redis.BoolCmd:
			if cmd.Val() {
				n++
			}
		case *redis.FloatCmd:
			if cmd.Err() == nil {
				n++
			}
		}
	}
	return n, nil
}

// erase removes what ob holds of the subject and returns how much.
func (c *Connector) erase(ctx context.Context, ob *object, v values) (int64, error) {
	if ob.kind == "scan" {
		var n int64
		err := c.scan(ctx, ob, v, func(keys []string) error {
			d, err := c.rdb.Unlink(ctx, keys...).Result()
			n += d
			return err
		})
		return n, err
	}
	keys, items, err := c.items(ctx, ob, v)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	if ob.kind == "key" {
		return c.rdb.Unlink(ctx, keys...).Result()
	}
	var n int64
	byKey := map[string][]string{}
	for _, p := range items {
		byKey[p[0]] = append(byKey[p[0]], p[1])
	}
	for _, k := range keys {
		var d int64
		var err error
		switch ob.kind {
		case "hash":
			d, err = c.rdb.HDel(ctx, k, byKey[k]...).Result()
		case "set":
			d, err = c.rdb.SRem(ctx, k, toAny(byKey[k])...).Result()
		case "zset":
			d, err = c.rdb.ZRem(ctx, k, toAny(byKey[k])...).Result()
		}
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// scan calls fn with every batch of keys matching ob's patterns. It never
// uses KEYS; it stops with an error after MaxIterations SCAN calls per
// pattern.
func (c *Connector) scan(ctx context.Context, ob *object, v values, fn func(keys []string) error) error {
	patterns, err := ob.key.expand(v, globEscape)
	if err != nil {
		return err
	}
	for _, pat := range patterns {
		var cursor uint64
		for i := 0; ; i++ {
			if i == ob.scan.MaxIterations {
				return &scanLimit{iterations: i}
			}
			keys, next, err := c.rdb.Scan(ctx, cursor, pat, ob.scan.Count).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := fn(keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return nil
}

func item(ob *object, n int64) lethe.ReportItem {
	return lethe.ReportItem{Object: ob.kind + " " + ob.name, Action: lethe.ActionDelete, Rows: n}
}

// Plan implements connector.Connector: one line per entry of the map,
// counting what Erase would remove now.
func (c *Connector) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.fail("plan", nil, err)
	}
	v := valuesOf(s.Identities)
	var r lethe.Report
	for i := range c.objects {
		ob := &c.objects[i]
		n, err := c.count(ctx, ob, v)
		if err != nil {
			return lethe.Report{}, c.fail("plan", ob, err)
		}
		r.Items = append(r.Items, item(ob, n))
	}
	return r, nil
}

// Erase implements connector.Connector. Every command removes only what
// exists, so a re-run removes (and reports) only what is left.
func (c *Connector) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.fail("erase", nil, err)
	}
	v := valuesOf(s.Identities)
	var r lethe.Report
	for i := range c.objects {
		ob := &c.objects[i]
		n, err := c.erase(ctx, ob, v)
		r.Items = append(r.Items, item(ob, n))
		if err != nil {
			return r, c.fail("erase", ob, err)
		}
	}
	return r, nil
}

// Verify implements connector.Connector.
func (c *Connector) Verify(ctx context.Context, s connector.Subject) error {
	if err := ctx.Err(); err != nil {
		return c.fail("verify", nil, err)
	}
	v := valuesOf(s.Identities)
	var left []string
	var total int64
	for i := range c.objects {
		ob := &c.objects[i]
		n, err := c.count(ctx, ob, v)
		if err != nil {
			return c.fail("verify", ob, err)
		}
		if n > 0 {
			total += n
			left = append(left, fmt.Sprintf("%s %q: %d", ob.kind, ob.name, n))
		}
	}
	if total > 0 {
		return fmt.Errorf("target %q: %d of the subject's entries left (%s)", c.name, total, strings.Join(left, ", "))
	}
	return nil
}
