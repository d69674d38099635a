package sqlconn_test

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The matching scenarios' schema: accounts is the root; sessions hang off
// it; newsletter and sms_log are matched only by email or phone; lines and
// visits have composite keys. Every table has owner, which the connector
// never reads.
var scenarioDDL = []string{
	`CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(40), owner VARCHAR(16) NOT NULL)`,
	`CREATE TABLE sessions (id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, owner VARCHAR(16) NOT NULL)`,
	`CREATE TABLE newsletter (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, owner VARCHAR(16) NOT NULL)`,
	`CREATE TABLE sms_log (id BIGINT PRIMARY KEY, phone VARCHAR(40) NOT NULL, body VARCHAR(64), owner VARCHAR(16) NOT NULL)`,
	`CREATE TABLE appt_lines (appointment_id BIGINT NOT NULL, line_no INT NOT NULL, account_id BIGINT NOT NULL, owner VARCHAR(16) NOT NULL,
		PRIMARY KEY (appointment_id, line_no))`,
	`CREATE TABLE visits (clinic VARCHAR(16) NOT NULL, visit_no INT NOT NULL, account_id BIGINT, note VARCHAR(64), owner VARCHAR(16) NOT NULL,
		PRIMARY KEY (clinic, visit_no))`,
}

var scenarioTables = []string{"accounts", "sessions", "newsletter", "sms_log", "appt_lines", "visits"}

const scenarioMap = `
driver: %s
dsn: %s
batch_size: 3
default_region: GB
follow_limit: 10
hash_key: 0123456789abcdef-test-key
tables:
  - name: accounts
    root: true
    identities: {email: email, phone: phone, user_id: id}
    action: delete
  - name: sessions
    references: {column: account_id, table: accounts}
    action: delete
  - name: newsletter
    identities: {email: email}
    action: delete
  - name: sms_log
    identities: {phone: phone}
    action: delete
  - name: appt_lines
    primary_key: [appointment_id, line_no]
    references: {column: account_id, table: accounts}
    action: delete
  - name: visits
    primary_key: [clinic, visit_no]
    references: {column: account_id, table: accounts}
    action: pseudonymize
    columns: {account_id: null, note: hash}
`

const (
	subjectID     = 7100001
	otherID       = 7100002
	subjectPhone  = "+447911123456"
	sharedDummy   = "+442079460000" // the placeholder: a real-looking number 300 accounts hold
	scenarioOther = "other"
)

// scenarioDB is one seeded database for a scenario.
type scenarioDB struct {
	shop
}

func (s *scenarioDB) account(tb testing.TB, id int64, email, phone any, owner string) {
	tb.Helper()
	s.exec(tb, `INSERT INTO accounts VALUES (?, ?, ?, ?)`, id, email, phone, owner)
	s.exec(tb, `INSERT INTO sessions VALUES (?, ?, ?)`, id*10+1, id, owner)
	s.exec(tb, `INSERT INTO sessions VALUES (?, ?, ?)`, id*10+2, id, owner)
	// Seven lines: more than two batches of three, keyed by (appointment, line).
	for i := range 7 {
		s.exec(tb, `INSERT INTO appt_lines VALUES (?, ?, ?, ?)`, id, i+1, id, owner)
	}
	for i := range 4 {
		s.exec(tb, `INSERT INTO visits VALUES (?, ?, ?, ?, ?)`, "c-"+owner, int(id%1000)*10+i, id, "note "+owner, owner)
	}
}

func newScenarioDB(tb testing.TB, b testdb.TargetDB) (*scenarioDB, string) {
	tb.Helper()
	dsn, db := b.Open(tb)
	s := &scenarioDB{shop{b: b, db: db}}
	for _, stmt := range scenarioDDL {
		s.exec(tb, stmt)
	}
	// Someone else, with data in every table.
	s.account(tb, otherID, "other@example.com", "+447911654321", scenarioOther)
	s.exec(tb, `INSERT INTO newsletter VALUES (?, ?, ?)`, 1, "Other@Example.com", scenarioOther)
	s.exec(tb, `INSERT INTO sms_log VALUES (?, ?, ?, ?)`, 1, "07911 654321", "hi", scenarioOther)
	// Near misses: one letter, one digit off.
	s.exec(tb, `INSERT INTO newsletter VALUES (?, ?, ?)`, 2, "alice.smith@example.co", scenarioOther)
	s.exec(tb, `INSERT INTO sms_log VALUES (?, ?, ?, ?)`, 2, "+44 7911 123457", "near", scenarioOther)
	return s, dsn
}

func (s *scenarioDB) connector(tb testing.TB, dsn string) *sqlconn.Connector {
	tb.Helper()
	return openValidated(tb, "clinic", fmt.Sprintf(scenarioMap, s.b.Driver, strconv.Quote(dsn)))
}

func (s *scenarioDB) snapshot(tb testing.TB) (string, string) {
	tb.Helper()
	var mine, others strings.Builder
	for _, t := range scenarioTables {
		lines, owners := dumpRows(tb, s.db, t, "SELECT * FROM "+t, "owner")
		idx := make([]int, len(lines))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return lines[idx[a]] < lines[idx[b]] })
		for _, i := range idx {
			w := &others
			if owners[i] == "subject" {
				w = &mine
			}
			w.WriteString(lines[i] + "\n")
		}
	}
	return mine.String(), others.String()
}

// remaining counts the subject's rows that still identify them: every row
// of the delete tables, and visits still linked.
func (s *scenarioDB) remaining(tb testing.TB) int64 {
	tb.Helper()
	var total int64
	for _, q := range []string{
		"SELECT COUNT(*) FROM accounts WHERE owner = 'subject'",
		"SELECT COUNT(*) FROM sessions WHERE owner = 'subject'",
		"SELECT COUNT(*) FROM newsletter WHERE owner = 'subject'",
		"SELECT COUNT(*) FROM sms_log WHERE owner = 'subject'",
		"SELECT COUNT(*) FROM appt_lines WHERE owner = 'subject'",
		"SELECT COUNT(*) FROM visits WHERE owner = 'subject' AND account_id IS NOT NULL",
	} {
		var n int64
		if err := s.db.QueryRow(q).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		total += n
	}
	return total
}

// seedScenario puts the subject's data in the scenario's shape and returns
// the identities the request gives and the values shared with others.
func (s *scenarioDB) seedScenario(tb testing.TB, sc connectortest.Scenario) (given, shared []lethe.Identity) {
	tb.Helper()
	email := func(v string) lethe.Identity { return lethe.Identity{Type: lethe.IdentityEmail, Value: v} }
	phone := lethe.Identity{Type: lethe.IdentityPhone, Value: subjectPhone}
	switch sc {
	case connectortest.MixedCaseEmail:
		s.account(tb, subjectID, "Alice.Smith@Example.com", subjectPhone, "subject")
		s.exec(tb, `INSERT INTO newsletter VALUES (?, ?, ?)`, 10, " ALICE.SMITH@example.COM ", "subject")
		return []lethe.Identity{email("alice.smith@example.com")}, nil
	case connectortest.FormattedPhone:
		s.account(tb, subjectID, "phone.person@example.com", "+44 7911 123456", "subject")
		for i, p := range []string{"+44 7911 123456", "(+44) 7911-123-456", "0044.7911.123456", "07911 123456"} {
			s.exec(tb, `INSERT INTO sms_log VALUES (?, ?, ?, ?)`, 10+i, p, "code", "subject")
		}
		return []lethe.Identity{phone}, nil
	case connectortest.UserIDMixedCaseEmail:
		s.account(tb, subjectID, "Bea.Jones@Example.com", nil, "subject")
		s.exec(tb, `INSERT INTO newsletter VALUES (?, ?, ?)`, 10, "bea.JONES@example.com", "subject")
		return []lethe.Identity{{Type: lethe.IdentityUserID, Value: strconv.Itoa(subjectID)}}, nil
	case connectortest.SharedPhone:
		s.account(tb, subjectID, "sam@example.com", "+44 7911 123456", "subject")
		s.account(tb, 7100003, "partner@example.com", "07911 123456", scenarioOther)
		return []lethe.Identity{phone}, nil
	case connectortest.Placeholder:
		s.account(tb, subjectID, "pat@example.com", sharedDummy, "subject")
		var rows, args []string
		var vals []any
		for i := range 300 {
			rows = append(rows, "(?, ?, ?, ?)")
			vals = append(vals, int64(7200000+i), fmt.Sprintf("many%d@example.com", i), "020 7946 0000", scenarioOther)
			args = append(args, "(?, ?, ?, ?)")
		}
		s.exec(tb, `INSERT INTO accounts VALUES `+strings.Join(rows, ", "), vals...)
		vals = vals[:0]
		for i := range 300 {
			vals = append(vals, int64(100+i), "+44 20 7946 0000", "sms", scenarioOther)
		}
		s.exec(tb, `INSERT INTO sms_log VALUES `+strings.Join(args, ", "), vals...)
		return []lethe.Identity{email("pat@example.com")}, []lethe.Identity{{Type: lethe.IdentityPhone, Value: sharedDummy}}
	case connectortest.MissingIdentityType:
		// No phone: sms_log, matched only by phone, has nothing to do.
		s.account(tb, subjectID, "nophone@example.com", nil, "subject")
		return []lethe.Identity{email("nophone@example.com")}, nil
	case connectortest.CompositeKey:
		// Every account has seven lines and four visits, so this is the
		// plain case: the subject's composite-key rows cross batches of 3.
		s.account(tb, subjectID, "kim@example.com", subjectPhone, "subject")
		return []lethe.Identity{email("kim@example.com")}, nil
	}
	tb.Fatalf("unknown scenario %s", sc)
	return nil, nil
}

func scenarioHarness(b testdb.TargetDB) connectortest.Harness {
	fixture := func(tb testing.TB, sc connectortest.Scenario) connectortest.Fixture {
		s, dsn := newScenarioDB(tb, b)
		given, shared := s.seedScenario(tb, sc)
		return connectortest.Fixture{
			Connector: s.connector(tb, dsn),
			Subject:   connector.Subject{RequestID: "req-" + string(sc), Identities: given},
			Snapshot:  s.snapshot,
			Remaining: s.remaining,
			Shared:    shared,
		}
	}
	return connectortest.Harness{
		Setup: func(tb testing.TB) connectortest.Fixture { return fixture(tb, connectortest.CompositeKey) },
		Scenario: func(tb testing.TB, sc connectortest.Scenario) (connectortest.Fixture, bool) {
			return fixture(tb, sc), true
		},
	}
}

func TestConformanceMatching(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		connectortest.Exercise(t, scenarioHarness(b))
	})
}
