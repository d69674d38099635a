package redisconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/redisconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The matching scenarios' map: index hashes and sets resolve user ids
// (root links), members and fields are matched by rule, and active_users
// is a fixed-key set keyed on {user_id}.
const scenarioYAML = `
default_region: GB
follow_limit: 10
keys: ["session:{user_id}", "profile:{email}", "user_email:{user_id}", "user_phone:{user_id}"]
hashes:
  - {key: email_index, fields: ["{email}"]}
sets:
  - {key: newsletter, member: "{email}"}
  - {key: active_users, member: "{user_id}"}
  - {key: sms_optin, member: "{phone}"}
  - {key: "phone_users:{phone}", member: "{user_id}"}
sorted_sets:
  - {key: phone_scores, member: "{phone}"}
resolve:
  - {key: email_index, field: "{email}", type: user_id, root: true}
  - {key: "phone_users:{phone}", type: user_id, root: true}
  - {key: "user_email:{user_id}", type: email}
  - {key: "user_phone:{user_id}", type: phone}
`

const (
	scSubject     = "u-subj-901"
	scSubjectE164 = "+447911123456"
	scPlaceholder = "+442079460000"
)

// scenarioDump splits the dump by whether a line names the subject: their
// user id, one of the scenario's emails (any case), or their phone in any
// format (its national digits).
func scenarioDump(tb testing.TB, rdb *redis.Client, p string, emails []string) (string, string) {
	tb.Helper()
	s, o := dump(tb, rdb, p)
	var mine, others []string
	for _, l := range strings.Split(s+"\n"+o, "\n") {
		if l == "" {
			continue
		}
		low := strings.ToLower(l)
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, l)
		subj := strings.Contains(l, scSubject) || strings.Contains(digits, "7911123456")
		for _, e := range emails {
			subj = subj || strings.Contains(low, e)
		}
		if subj {
			mine = append(mine, l)
		} else {
			others = append(others, l)
		}
	}
	return strings.Join(mine, "\n"), strings.Join(others, "\n")
}

func seedScenario(tb testing.TB, rdb *redis.Client, p string, sc connectortest.Scenario) (given, shared []lethe.Identity, emails []string) {
	tb.Helper()
	ctx := context.Background()
	// Someone else, in every structure.
	must(tb, rdb.Set(ctx, p+"session:u-other-902", "s", 0).Err())
	must(tb, rdb.Set(ctx, p+"profile:other@example.com", "{}", 0).Err())
	must(tb, rdb.HSet(ctx, p+"email_index", "Other@Example.com", "u-other-902").Err())
	must(tb, rdb.SAdd(ctx, p+"newsletter", "OTHER@example.com", "alice.smith@example.co").Err())
	must(tb, rdb.SAdd(ctx, p+"active_users", "u-other-902").Err())
	must(tb, rdb.SAdd(ctx, p+"sms_optin", "+44 7911 654321", "+44 7911 123457").Err())
	must(tb, rdb.ZAdd(ctx, p+"phone_scores", redis.Z{Score: 1, Member: "07911 654321"}).Err())
	must(tb, rdb.SAdd(ctx, p+"phone_users:+447911654321", "u-other-902").Err())

	subjectAccount := func(email string) {
		must(tb, rdb.Set(ctx, p+"session:"+scSubject, "s", 0).Err())
		must(tb, rdb.SAdd(ctx, p+"active_users", scSubject).Err())
		if email != "" {
			must(tb, rdb.HSet(ctx, p+"email_index", email, scSubject).Err())
			must(tb, rdb.Set(ctx, p+"user_email:"+scSubject, email, 0).Err())
		}
	}
	email := func(v string) lethe.Identity { return lethe.Identity{Type: lethe.IdentityEmail, Value: v} }
	phone := lethe.Identity{Type: lethe.IdentityPhone, Value: scSubjectE164}
	switch sc {
	case connectortest.MixedCaseEmail:
		subjectAccount("Alice.Smith@Example.com")
		must(tb, rdb.SAdd(ctx, p+"newsletter", " ALICE.SMITH@example.COM").Err())
		return []lethe.Identity{email("alice.smith@example.com")}, nil, []string{"alice.smith@example.com"}
	case connectortest.FormattedPhone:
		subjectAccount("")
		must(tb, rdb.SAdd(ctx, p+"phone_users:"+scSubjectE164, scSubject).Err())
		must(tb, rdb.SAdd(ctx, p+"sms_optin", "+44 7911 123456", "(+44) 7911-123-456").Err())
		must(tb, rdb.ZAdd(ctx, p+"phone_scores", redis.Z{Score: 1, Member: "0044.7911.123456"}, redis.Z{Score: 2, Member: "07911 123456"}).Err())
		return []lethe.Identity{phone}, nil, nil
	case connectortest.UserIDMixedCaseEmail:
		subjectAccount("Bea.Jones@Example.com")
		must(tb, rdb.SAdd(ctx, p+"newsletter", "bea.JONES@example.com").Err())
		return []lethe.Identity{{Type: lethe.IdentityUserID, Value: scSubject}}, nil, []string{"bea.jones@example.com"}
	case connectortest.SharedPhone:
		subjectAccount("sam@example.com")
		must(tb, rdb.SAdd(ctx, p+"phone_users:"+scSubjectE164, scSubject, "u-partner-903").Err())
		return []lethe.Identity{phone}, nil, []string{"sam@example.com"}
	case connectortest.Placeholder:
		subjectAccount("pat@example.com")
		must(tb, rdb.Set(ctx, p+"user_phone:"+scSubject, scPlaceholder, 0).Err())
		many := make([]any, 300)
		for i := range many {
			many[i] = fmt.Sprintf("u-many-%d", i)
		}
		must(tb, rdb.SAdd(ctx, p+"phone_users:"+scPlaceholder, many...).Err())
		must(tb, rdb.SAdd(ctx, p+"sms_optin", "020 7946 0000").Err())
		return []lethe.Identity{email("pat@example.com")}, []lethe.Identity{{Type: lethe.IdentityPhone, Value: scPlaceholder}}, []string{"pat@example.com"}
	case connectortest.MissingIdentityType:
		// Unknown to the company as a user: no user id, so the fixed-key
		// active_users set (keyed on {user_id}) has nothing to remove.
		must(tb, rdb.Set(ctx, p+"profile:nobody@example.com", "{}", 0).Err())
		must(tb, rdb.SAdd(ctx, p+"newsletter", "Nobody@Example.com").Err())
		return []lethe.Identity{email("nobody@example.com")}, nil, []string{"nobody@example.com"}
	}
	tb.Fatalf("unknown scenario %s", sc)
	return nil, nil, nil
}

func TestConformanceMatching(t *testing.T) {
	url := testdb.RedisURL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	fixture := func(tb testing.TB, sc connectortest.Scenario) connectortest.Fixture {
		p := testdb.RedisPrefix(tb, url)
		rdb := redis.NewClient(opts)
		tb.Cleanup(func() { rdb.Close() })
		given, shared, emails := seedScenario(tb, rdb, p, sc)
		var o redisconn.Options
		if err := yaml.Unmarshal([]byte(scenarioYAML), &o); err != nil {
			tb.Fatal(err)
		}
		o.URL, o.KeyPrefix = url, p
		c, err := redisconn.Open("cache", o)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		snap := func(tb testing.TB) (string, string) { return scenarioDump(tb, rdb, p, emails) }
		return connectortest.Fixture{
			Connector: c,
			Subject:   connector.Subject{RequestID: "r-" + string(sc), Identities: given},
			Snapshot:  snap,
			Remaining: func(tb testing.TB) int64 {
				s, _ := snap(tb)
				if s == "" {
					return 0
				}
				return int64(strings.Count(s, "\n") + 1)
			},
			Shared: shared,
		}
	}
	connectortest.Exercise(t, connectortest.Harness{
		Setup: func(tb testing.TB) connectortest.Fixture { return fixture(tb, connectortest.UserIDMixedCaseEmail) },
		Scenario: func(tb testing.TB, sc connectortest.Scenario) (connectortest.Fixture, bool) {
			if sc == connectortest.CompositeKey {
				return connectortest.Fixture{}, false // Redis has no primary keys
			}
			return fixture(tb, sc), true
		},
	})
}
