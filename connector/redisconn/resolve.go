package redisconn

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

var _ connector.SubjectResolver = (*Connector)(nil)

// maxResolveRounds bounds how often Resolve follows what it found.
const maxResolveRounds = 4

// Resolve implements connector.Connector; see ResolveSubject.
func (c *Connector) Resolve(ctx context.Context, s connector.Subject) ([]lethe.Identity, error) {
	r, err := c.ResolveSubject(ctx, s)
	return r.Identities, err
}

// ResolveSubject implements connector.SubjectResolver. Every link's key
// (string), hash field or set members holding values are linked
// identities, followed again (bounded) with what was found. The values a
// root link yields are root records; a value reaching more than
// follow_limit of them, or a link yielding more than that for one value,
// is not followed and is named by its link.
func (c *Connector) ResolveSubject(ctx context.Context, s connector.Subject) (connector.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return connector.Resolution{}, c.fail("resolve", nil, err)
	}
	known := map[lethe.Identity]bool{}
	unfollowed := map[string]bool{}
	var follow, found []lethe.Identity
	for _, id := range s.Identities {
		if known[id] {
			continue
		}
		known[id] = true
		ok, err := c.followable(ctx, id, unfollowed, "")
		if err != nil {
			return connector.Resolution{}, c.fail("resolve", nil, err)
		}
		if ok {
			follow = append(follow, id)
		}
	}
	for round := 0; round < maxResolveRounds; round++ {
		added := false
		for i := range c.links {
			l := &c.links[i]
			vals, n, err := c.linked(ctx, l, valuesOf(follow))
			if err != nil {
				return connector.Resolution{}, c.fail("resolve", nil, err)
			}
			if n > c.follow {
				// One value leads to many accounts: a placeholder.
				unfollowed["resolve "+l.name] = true
				continue
			}
			for _, val := range vals {
				id, err := lethe.NormalizeIdentity(lethe.Identity{Type: l.typ, Value: val})
				if err != nil || known[id] {
					continue
				}
				known[id] = true
				ok, err := c.followable(ctx, id, unfollowed, "resolve "+l.name)
				if err != nil {
					return connector.Resolution{}, c.fail("resolve", nil, err)
				}
				if ok {
					found = append(found, id)
					follow = append(follow, id)
					added = true
				}
			}
		}
		if !added {
			break
		}
	}
	slices.SortFunc(found, func(a, b lethe.Identity) int {
		return strings.Compare(string(a.Type)+"\x00"+a.Value, string(b.Type)+"\x00"+b.Value)
	})
	res := connector.Resolution{Identities: found, RootRecords: map[string]int{}}
	all := valuesOf(append(slices.Clone(s.Identities), found...))
	for i := range c.links {
		l := &c.links[i]
		if !l.root {
			continue
		}
		vals, n, err := c.linked(ctx, l, all)
		if err != nil {
			return connector.Resolution{}, c.fail("resolve", nil, err)
		}
		// A root id the subject was given counts as reached too.
		for _, v := range all[l.typ] {
			if !slices.Contains(vals, v) {
				n++
			}
		}
		if n > 0 {
			res.RootRecords[l.name] = n
		}
	}
	for name := range unfollowed {
		res.Unfollowed = append(res.Unfollowed, name)
	}
	slices.Sort(res.Unfollowed)
	return res, nil
}

// followable reports whether id reaches at most follow_limit records
// through every root link, naming where it was found when not.
func (c *Connector) followable(ctx context.Context, id lethe.Identity, unfollowed map[string]bool, foundIn string) (bool, error) {
	for i := range c.links {
		l := &c.links[i]
		if !l.root {
			continue
		}
		_, n, err := c.linked(ctx, l, values{id.Type: {id.Value}})
		if err != nil {
			return false, err
		}
		if n > c.follow {
			if foundIn == "" {
				foundIn = "resolve " + l.name
			}
			unfollowed[foundIn] = true
			return false, nil
		}
	}
	return true, nil
}

// linked returns the distinct values link l yields for v, trimmed, without
// empty ones, and how many there are: a set larger than the follow limit
// is counted (SCARD), not read, and its members are not in the values.
func (c *Connector) linked(ctx context.Context, l *link, v values) ([]string, int, error) {
	keys, err := l.key.expand(v, same)
	if err != nil || len(keys) == 0 {
		return nil, 0, err
	}
	var out []string
	unread := 0
	add := func(val string) {
		if val = strings.TrimSpace(val); val != "" && !slices.Contains(out, val) {
			out = append(out, val)
		}
	}
	for _, k := range keys {
		if len(l.field.parts) > 0 {
			var fields []string
			if l.fmatch.rule == "" {
				fields, err = l.field.expand(v, same)
			} else {
				fields, err = c.scanItems(ctx, "hash", k, l.fmatch, v[l.fmatch.typ])
			}
			if err != nil {
				return nil, 0, err
			}
			for _, f := range fields {
				val, err := c.rdb.HGet(ctx, k, f).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					return nil, 0, err
				}
				add(val)
			}
			continue
		}
		typ, err := c.rdb.Type(ctx, k).Result()
		if err != nil {
			return nil, 0, err
		}
		switch typ {
		case "string":
			val, err := c.rdb.Get(ctx, k).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, 0, err
			}
			add(val)
		case "set":
			// Bounded: a set larger than the follow limit is a placeholder
			// index, reported by its size alone.
			n, err := c.rdb.SCard(ctx, k).Result()
			if err != nil {
				return nil, 0, err
			}
			if n > int64(c.follow) {
				unread += int(n)
				continue
			}
			ms, err := c.rdb.SMembers(ctx, k).Result()
			if err != nil {
				return nil, 0, err
			}
			for _, m := range ms {
				add(m)
			}
		}
	}
	return out, len(out) + unread, nil
}
