package sqlconn_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// forumDDL is a schema unlike the shop: the root is accounts (not users),
// its identities have other names (login_email, mobile), links run over
// cascading keys and two parents, and one table of contacts is tied to
// nobody by a key: only its values show it holds emails.
var forumDDL = []string{
	`CREATE TABLE accounts (id BIGINT PRIMARY KEY, login_email VARCHAR(255) NOT NULL, mobile VARCHAR(32), display_name VARCHAR(100))`,
	`CREATE TABLE profiles (id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, bio VARCHAR(255),
		FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE)`,
	`CREATE TABLE posts (id BIGINT PRIMARY KEY, author_id BIGINT, title VARCHAR(100),
		FOREIGN KEY (author_id) REFERENCES accounts (id))`,
	`CREATE TABLE comments (id BIGINT PRIMARY KEY, post_id BIGINT NOT NULL, commenter_id BIGINT, body VARCHAR(255),
		FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE, FOREIGN KEY (commenter_id) REFERENCES accounts (id))`,
	`CREATE TABLE reactions (id BIGINT PRIMARY KEY, comment_id BIGINT NOT NULL, account_id BIGINT NOT NULL,
		FOREIGN KEY (comment_id) REFERENCES comments (id), FOREIGN KEY (account_id) REFERENCES accounts (id))`,
	`CREATE TABLE payments (id BIGINT PRIMARY KEY, account_id BIGINT, amount BIGINT NOT NULL, card_holder VARCHAR(100),
		FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL)`,
	`CREATE TABLE contact_requests (id BIGINT PRIMARY KEY, contact VARCHAR(255), message VARCHAR(255))`,
	`CREATE TABLE tags (id BIGINT PRIMARY KEY, label VARCHAR(50))`,
}

// forumMap is the hand-written map of the forum.
const forumMap = `
driver: %s
dsn: %s
hash_key: 0123456789abcdef-test-key
tables:
  - name: accounts
    identities: {email: login_email, phone: mobile, user_id: id}
    action: delete
  - name: profiles
    references: {column: account_id, table: accounts}
    action: delete
  - name: posts
    references: {column: author_id, table: accounts}
    action: delete
  - name: comments
    references:
      - {column: commenter_id, table: accounts}
      - {column: post_id, table: posts}
    action: delete
  - name: reactions
    references:
      - {column: account_id, table: accounts}
      - {column: comment_id, table: comments}
    action: delete
  - name: payments
    references: {column: account_id, table: accounts}
    action: pseudonymize
    columns: {account_id: null, card_holder: null}
  - name: contact_requests
    identities: {email: contact}
    action: delete
`

func seedForum(tb testing.TB, s *shop) {
	tb.Helper()
	for _, stmt := range forumDDL {
		s.exec(tb, stmt)
	}
	for a := int64(1); a <= 3; a++ {
		s.exec(tb, `INSERT INTO accounts VALUES (?, ?, ?, ?)`, a, fmt.Sprintf("member%d@example.org", a), fmt.Sprintf("+44770090012%d", a), fmt.Sprintf("Member %d", a))
	}
	for a := int64(1); a <= 3; a++ {
		s.exec(tb, `INSERT INTO profiles VALUES (?, ?, ?)`, a, a, "hello")
		s.exec(tb, `INSERT INTO payments VALUES (?, ?, ?, ?)`, a, a, 100*a, "Holder")
		for p := int64(1); p <= 2; p++ {
			post := a*10 + p
			s.exec(tb, `INSERT INTO posts VALUES (?, ?, ?)`, post, a, "title")
			// Every other member comments on each post, and reacts.
			for o := int64(1); o <= 3; o++ {
				if o == a {
					continue
				}
				comment := post*10 + o
				s.exec(tb, `INSERT INTO comments VALUES (?, ?, ?, ?)`, comment, post, o, "nice")
				s.exec(tb, `INSERT INTO reactions VALUES (?, ?, ?)`, comment, comment, a)
			}
		}
		s.exec(tb, `INSERT INTO contact_requests VALUES (?, ?, ?)`, a, fmt.Sprintf("member%d@example.org", a), "question")
	}
	s.exec(tb, `INSERT INTO contact_requests VALUES (?, ?, ?)`, 9, "stranger@example.net", "question")
	s.exec(tb, `INSERT INTO tags VALUES (?, ?)`, 1, "news")
}

// dump renders every row of every table, sorted.
func (s *shop) dump(tb testing.TB) string {
	tb.Helper()
	var tables []string
	q := map[string]string{
		"sqlite":   `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`,
		"postgres": `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`,
		"mysql":    `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`,
	}[s.b.Driver]
	rows, err := s.db.Query(q)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			tb.Fatal(err)
		}
		// The demo's seed mark holds the time of seeding, which differs
		// between the two databases; it is no map's business. Neither is
		// lethe's ledger, whose request ids and batch ids differ per run.
		if n != "demo_seed" && !strings.HasPrefix(n, "lethe_erasure_") {
			tables = append(tables, n)
		}
	}
	rows.Close()
	slices.Sort(tables)
	var b strings.Builder
	for _, t := range tables {
		rows, err := s.db.Query("SELECT * FROM " + t)
		if err != nil {
			tb.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			// Every value as text (NULL as <nil>): the dialects scan
			// numbers into different Go types.
			cells := make([]*sql.NullString, len(cols))
			dst := make([]any, 0, len(cols))
			for i := range cells {
				cells[i] = new(sql.NullString)
				dst = append(dst, cells[i])
			}
			if err := rows.Scan(dst...); err != nil {
				tb.Fatal(err)
			}
			fields := []string{t}
			for i, c := range cells {
				v := "<nil>"
				if c.Valid {
					v = c.String
				}
				fields = append(fields, cols[i]+"="+v)
			}
			lines = append(lines, strings.Join(fields, " "))
		}
		rows.Close()
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// resolveDecisions plays the reviewer: it takes the proposed map as it
// stands (tables, identities, references) and makes the decisions its
// REVIEW marks ask for, the action of each table, as the hand-written map
// made them.
func resolveDecisions(tb testing.TB, proposed []byte, dsn string, hand sqlconn.Options) sqlconn.Options {
	tb.Helper()
	var file struct {
		Targets []sqlconn.Options `yaml:"targets"`
	}
	if err := yaml.Unmarshal(proposed, &file); err != nil || len(file.Targets) != 1 {
		tb.Fatalf("proposed map does not parse as one target (%v):\n%s", err, proposed)
	}
	o := file.Targets[0]
	o.DSN, o.HashKey = dsn, hand.HashKey
	decided := map[string]sqlconn.Table{}
	for _, t := range hand.Tables {
		decided[t.Name] = t
	}
	var names, handNames []string
	for i, t := range o.Tables {
		names = append(names, t.Name)
		if h, ok := decided[t.Name]; ok {
			o.Tables[i].Action, o.Tables[i].Columns, o.Tables[i].Reason, o.Tables[i].Until = h.Action, h.Columns, h.Reason, h.Until
		}
	}
	for _, t := range hand.Tables {
		handNames = append(handNames, t.Name)
	}
	slices.Sort(names)
	slices.Sort(handNames)
	if diff := cmp.Diff(handNames, names); diff != "" {
		tb.Errorf("discovered tables differ from the hand-written map's (-hand +discovered):\n%s\n%s", diff, proposed)
	}
	return o
}

// eraseAll erases each subject with c, as the pipeline would: resolve,
// erase, verify.
func eraseAll(tb testing.TB, c *sqlconn.Connector, subjects [][]lethe.Identity) {
	tb.Helper()
	ctx := context.Background()
	for _, given := range subjects {
		found, err := c.Resolve(ctx, connector.Subject{Identities: given})
		if err != nil {
			tb.Fatal(err)
		}
		subj := connector.Subject{Identities: append(slices.Clone(given), found...)}
		if _, err := c.Erase(ctx, subj); err != nil {
			tb.Fatal(err)
		}
		if err := c.Verify(ctx, subj); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestDiscoverErasesLikeHandWritten: on the demo shop and on the forum,
// the map Discover proposes passes CheckSchema and, once its REVIEW marks
// are resolved, erases exactly the rows the hand-written map erases.
func TestDiscoverErasesLikeHandWritten(t *testing.T) {
	type schemaCase struct {
		name     string
		root     string
		backends []testdb.TargetDB
		seed     func(tb testing.TB, s *shop)
		hand     func(tb testing.TB, driver, dsn string) sqlconn.Options // the hand-written map
		subjects [][]lethe.Identity
	}
	people := demo.People(40)
	cases := []schemaCase{
		{
			name: "demo", root: "users", backends: testdb.TargetDBsOf("sqlite", "postgres"), // the demo shop runs on these
			seed: func(tb testing.TB, s *shop) {
				if _, _, err := demo.Create(context.Background(), s.db, s.b.Driver, 40); err != nil {
					tb.Fatal(err)
				}
			},
			hand: func(tb testing.TB, driver, dsn string) sqlconn.Options {
				var file struct {
					Targets []sqlconn.Options `yaml:"targets"`
				}
				if err := yaml.Unmarshal([]byte("targets:\n"+demo.TargetYAML(driver, dsn, "0123456789abcdef-test-key")), &file); err != nil {
					tb.Fatal(err)
				}
				return file.Targets[0]
			},
			subjects: [][]lethe.Identity{
				{{Type: lethe.IdentityEmail, Value: people[3].Email}},
				{{Type: lethe.IdentityPhone, Value: people[7].Phone}},
			},
		},
		{
			name: "forum", root: "accounts", backends: testdb.TargetDBs,
			seed: seedForum,
			hand: func(tb testing.TB, driver, dsn string) sqlconn.Options {
				var o sqlconn.Options
				if err := yaml.Unmarshal([]byte(fmt.Sprintf(forumMap, driver, fmt.Sprintf("%q", dsn))), &o); err != nil {
					tb.Fatal(err)
				}
				return o
			},
			subjects: [][]lethe.Identity{
				{{Type: lethe.IdentityEmail, Value: "member1@example.org"}},
				{{Type: lethe.IdentityPhone, Value: "+447700900122"}},
			},
		},
	}
	for _, sc := range cases {
		for _, b := range sc.backends {
			t.Run(sc.name+"/"+b.Driver, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				discovered, dsnD := newDB(t, b)
				handDB, dsnH := newDB(t, b)
				sc.seed(t, discovered)
				sc.seed(t, handDB)
				before := discovered.dump(t)

				proposed, err := sqlconn.Discover(ctx, sqlconn.DiscoverOptions{Driver: b.Driver, DSN: dsnD, Root: sc.root, Target: "app", Sample: true})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(proposed), "REVIEW:") {
					t.Errorf("no guess marked for review:\n%s", proposed)
				}
				hand := sc.hand(t, b.Driver, dsnH)
				opts := resolveDecisions(t, proposed, dsnD, hand)
				cd, err := sqlconn.Open("app", opts)
				if err != nil {
					t.Fatalf("proposed map refused: %v\n%s", err, proposed)
				}
				defer cd.Close()
				if err := cd.Validate(ctx); err != nil {
					t.Fatalf("proposed map: Validate: %v\n%s", err, proposed)
				}
				if errs := connector.Errors(check(t, cd)); len(errs) != 0 {
					t.Fatalf("proposed map: check errors %v\n%s", errs, proposed)
				}
				ch, err := sqlconn.Open("app", hand)
				if err != nil {
					t.Fatal(err)
				}
				defer ch.Close()
				if errs := connector.Errors(check(t, ch)); len(errs) != 0 {
					t.Fatalf("hand-written map: check errors %v", errs)
				}

				eraseAll(t, cd, sc.subjects)
				eraseAll(t, ch, sc.subjects)
				after := discovered.dump(t)
				if after == before {
					t.Fatal("the erase changed nothing")
				}
				if diff := cmp.Diff(handDB.dump(t), after); diff != "" {
					t.Errorf("rows left by the discovered map differ from the hand-written map's (-hand +discovered):\n%s\nproposed map:\n%s", diff, proposed)
				}
			})
		}
	}
}
