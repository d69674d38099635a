package redisconn_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/redisconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The subject's email holds glob metacharacters, and the other person's
// email is exactly what the unescaped pattern would also match.
const (
	subjectEmail = "ada*redis?x@example.com"
	subjectUser  = "u-redis-subject-77"
	otherEmail   = "adaXYZredisQx@example.com"
	otherUser    = "u-redis-other-78"
)

// The scan's count is small so that a scan takes several SCAN calls even
// over this test's few keys; max_iterations is large because SCAN walks the
// whole shared database, whatever else it holds, not only this test's prefix.
const mapYAML = `
keys: ["session:{user_id}", "cart:{user_id}", "profile:{email}", "user_by_email:{email}"]
hashes:
  - {key: "prefs:{user_id}", fields: [email, phone]}
  - {key: email_index, fields: ["{email}"]}
sets:
  - {key: newsletter, member: "{email}"}
sorted_sets:
  - {key: leaderboard, member: "{user_id}"}
scans:
  - {pattern: "recent:{email}:*", count: 10, max_iterations: 10000000}
resolve:
  - {key: "user_by_email:{email}", type: user_id}
`

func options(tb testing.TB, url, prefix string) redisconn.Options {
	tb.Helper()
	var o redisconn.Options
	if err := yaml.Unmarshal([]byte(mapYAML), &o); err != nil {
		tb.Fatal(err)
	}
	o.URL, o.KeyPrefix = url, prefix
	return o
}

func seed(tb testing.TB, rdb *redis.Client, p string) {
	tb.Helper()
	ctx := context.Background()
	for _, who := range []struct{ email, user string }{{subjectEmail, subjectUser}, {otherEmail, otherUser}} {
		must(tb, rdb.Set(ctx, p+"session:"+who.user, "s", 0).Err())
		must(tb, rdb.Set(ctx, p+"cart:"+who.user, "c", 0).Err())
		must(tb, rdb.Set(ctx, p+"profile:"+who.email, "{}", 0).Err())
		must(tb, rdb.Set(ctx, p+"user_by_email:"+who.email, who.user, 0).Err())
		must(tb, rdb.HSet(ctx, p+"prefs:"+who.user, "email", who.email, "phone", "+4915100000000").Err())
		must(tb, rdb.HSet(ctx, p+"email_index", who.email, who.user).Err())
		must(tb, rdb.SAdd(ctx, p+"newsletter", who.email).Err())
		must(tb, rdb.ZAdd(ctx, p+"leaderboard", redis.Z{Score: 1, Member: who.user}).Err())
		for i := range 5 {
			must(tb, rdb.Set(ctx, fmt.Sprintf("%srecent:%s:%d", p, who.email, i), "r", 0).Err())
		}
	}
	must(tb, rdb.Set(ctx, p+"unrelated", "x", 0).Err())
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// dump renders every key under the prefix, element by element, split into
// lines naming the subject and the rest.
func dump(tb testing.TB, rdb *redis.Client, p string) (subject, others string) {
	tb.Helper()
	ctx := context.Background()
	var lines []string
	iter := rdb.Scan(ctx, 0, p+"*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		switch rdb.Type(ctx, k).Val() {
		case "string":
			lines = append(lines, k+" = "+rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				lines = append(lines, k+" # "+f+" = "+v)
			}
		case "set":
			for _, m := range rdb.SMembers(ctx, k).Val() {
				lines = append(lines, k+" { "+m)
			}
		case "zset":
			for _, m := range rdb.ZRange(ctx, k, 0, -1).Val() {
				lines = append(lines, k+" z "+m)
			}
		}
	}
	must(tb, iter.Err())
	sort.Strings(lines)
	var s, o []string
	for _, l := range lines {
		if strings.Contains(l, subjectEmail) || strings.Contains(l, subjectUser) {
			s = append(s, l)
		} else {
			o = append(o, l)
		}
	}
	return strings.Join(s, "\n"), strings.Join(o, "\n")
}

func TestConformance(t *testing.T) {
	url := testdb.RedisURL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		p := testdb.RedisPrefix(tb, url)
		rdb := redis.NewClient(opts)
		tb.Cleanup(func() { rdb.Close() })
		seed(tb, rdb, p)
		c, err := redisconn.Open("cache", options(tb, url, p))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return connectortest.Fixture{
			Connector: c,
			Subject: connector.Subject{RequestID: "r-redis", Identities: []lethe.Identity{
				{Type: lethe.IdentityEmail, Value: subjectEmail},
			}},
			Snapshot: func(tb testing.TB) (string, string) { return dump(tb, rdb, p) },
			Remaining: func(tb testing.TB) int64 {
				s, _ := dump(tb, rdb, p)
				if s == "" {
					return 0
				}
				return int64(strings.Count(s, "\n") + 1)
			},
		}
	}})
}

func TestPlanCounts(t *testing.T) {
	url := testdb.RedisURL(t)
	p := testdb.RedisPrefix(t, url)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	seed(t, rdb, p)
	c, err := redisconn.Open("cache", options(t, url, p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub := connector.Subject{Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: subjectEmail}, {Type: lethe.IdentityUserID, Value: subjectUser}}}
	plan, err := c.Plan(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, it := range plan.Items {
		got[it.Object] = it.Rows
	}
	want := map[string]int64{
		"key session:{user_id}": 1, "key cart:{user_id}": 1, "key profile:{email}": 1, "key user_by_email:{email}": 1,
		"hash prefs:{user_id} email phone": 2, "hash email_index {email}": 1,
		"set newsletter {email}": 1, "zset leaderboard {user_id}": 1,
		"scan recent:{email}:*": 5, // not the other person's 5: the pattern's ? and * are escaped
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("plan %q = %d, want %d (plan %v)", k, got[k], v, got)
		}
	}
}

func TestScanBounded(t *testing.T) {
	url := testdb.RedisURL(t)
	p := testdb.RedisPrefix(t, url)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	seed(t, rdb, p)
	o := options(t, url, p)
	o.Scans[0].Count, o.Scans[0].MaxIterations = 1, 1
	c, err := redisconn.Open("cache", o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Verify(context.Background(), connector.Subject{Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: subjectEmail}}})
	if err == nil || !strings.Contains(err.Error(), "did not finish within 1 iterations") || strings.Contains(err.Error(), subjectEmail) {
		t.Errorf("Verify with a scan bound too small: %v", err)
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, doc := range map[string]string{
		"no url":                `keys: ["a:{email}"]`,
		"nothing to erase":      `url: redis://127.0.0.1:6379/0`,
		"fixed key":             "url: redis://127.0.0.1:6379/0\nkeys: [sessions]",
		"unknown placeholder":   "url: redis://127.0.0.1:6379/0\nkeys: [\"a:{nope}\"]",
		"unclosed":              "url: redis://127.0.0.1:6379/0\nkeys: [\"a:{email\"]",
		"set member fixed":      "url: redis://127.0.0.1:6379/0\nsets: [{key: s, member: x}]",
		"scan without identity": "url: redis://127.0.0.1:6379/0\nscans: [{pattern: \"a:*\"}]",
	} {
		tgt := connector.Target{Name: "cache", Kind: redisconn.Kind, Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }}
		if c, err := redisconn.New(context.Background(), tgt); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	if in := redisconn.Info(); in.Kind != "redis" {
		t.Errorf("Info().Kind = %q", in.Kind)
	}
}
