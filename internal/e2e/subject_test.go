package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// subjectSchema is a shop over two databases: accounts, addresses, orders
// and composite-keyed order lines on PostgreSQL; support tickets and an
// SMS log on SQLite. Every row carries a tag naming whose it is, which no
// data map column reads: the test's own record of the truth.
var subjectSchema = struct{ core, support []string }{
	core: []string{
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL, phone TEXT, name TEXT, tag TEXT NOT NULL)`,
		`CREATE TABLE addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), street TEXT, tag TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), total NUMERIC(10,2), tag TEXT NOT NULL)`,
		`CREATE TABLE order_items (order_id BIGINT NOT NULL REFERENCES orders (id), line_no INT NOT NULL, sku TEXT, tag TEXT NOT NULL,
			PRIMARY KEY (order_id, line_no))`,
	},
	support: []string{
		`CREATE TABLE tickets (id INTEGER PRIMARY KEY, email TEXT, customer_id TEXT, body TEXT, tag TEXT NOT NULL)`,
		`CREATE TABLE sms_log (id INTEGER PRIMARY KEY, phone TEXT NOT NULL, text TEXT, tag TEXT NOT NULL)`,
	},
}

// person is one account of the shop and how its data is stored: emails in
// the case the application kept, phones in whatever format it was typed.
type person struct {
	tag       string
	id        int64
	email     string
	phone     string
	addresses int
	orders    []int // lines per order
	tickets   []string
	sms       []string // phones as logged
	redis     bool     // has a session, an index entry and a newsletter membership
}

// placeholder is a phone many accounts were given by a sign-up form.
const placeholder = "+1 (201) 555-0100"

func subjectPeople() []person {
	people := []person{
		{tag: "ada", id: 1, email: "Ada.Lovelace@Example.com", phone: "+44 7400 123456", addresses: 2, orders: []int{3, 1},
			tickets: []string{"ADA.LOVELACE@example.com", " ada.lovelace@EXAMPLE.com "}, sms: []string{"+447400123456", "+44 7400 123 456"}, redis: true},
		{tag: "bob", id: 2, email: "bob@example.org", phone: "(201) 555-0123", addresses: 1, orders: []int{2},
			tickets: []string{"Bob@Example.ORG"}, sms: []string{"201-555-0123"}, redis: true},
		{tag: "carol", id: 3, email: "Carol@Example.NET", phone: "201.555.0199", addresses: 1, orders: []int{1, 1},
			tickets: []string{"carol@example.net"}, sms: []string{"+1 201 555 0199", "(201) 555 0199"}, redis: true},
		// Dan and Eve share a household phone.
		{tag: "dan", id: 4, email: "dan@example.com", phone: "+1 201-555-0777", addresses: 1, orders: []int{2},
			tickets: []string{"Dan@example.com"}, sms: []string{"2015550777"}, redis: true},
		{tag: "eve", id: 5, email: "EVE@example.com", phone: "2015550777", addresses: 1, orders: []int{1}, redis: true},
		{tag: "fay", id: 6, email: "Fay@Example.com", phone: placeholder, addresses: 1, orders: []int{2},
			tickets: []string{"FAY@example.com"}, redis: true},
	}
	// Eleven more accounts with the placeholder phone (twelve with Fay's:
	// more than follow_limit), and bystanders with nothing in common.
	for i := int64(7); i <= 17; i++ {
		people = append(people, person{tag: fmt.Sprintf("ph%d", i), id: i, email: fmt.Sprintf("Filler%d@Example.com", i),
			phone: placeholder, addresses: 1, orders: []int{1}, redis: i%2 == 0})
	}
	for i := int64(18); i <= 30; i++ {
		people = append(people, person{tag: fmt.Sprintf("by%d", i), id: i, email: fmt.Sprintf("Person%d@example.com", i),
			phone: fmt.Sprintf("+1 201 555 %04d", 200+i), addresses: 1, orders: []int{1, 2},
			tickets: []string{fmt.Sprintf("person%d@EXAMPLE.com", i)}, sms: []string{fmt.Sprintf("201555%04d", 200+i)}, redis: true})
	}
	return people
}

// seedSubjects writes the people into the two databases and Redis.
func seedSubjects(t *testing.T, core, support *sql.DB, rdb *redis.Client, prefix string, people []person) {
	t.Helper()
	ctx := context.Background()
	run(t, core, subjectSchema.core...)
	run(t, support, subjectSchema.support...)
	var addr, order, ticket, sms int64
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", firstLine(q), err)
		}
	}
	for _, p := range people {
		exec(core, `INSERT INTO users (id, email, phone, name, tag) VALUES ($1, $2, $3, $4, $5)`, p.id, p.email, p.phone, "Name "+p.tag, p.tag)
		for range p.addresses {
			addr++
			exec(core, `INSERT INTO addresses (id, user_id, street, tag) VALUES ($1, $2, $3, $4)`, addr, p.id, fmt.Sprintf("%d Main St", addr), p.tag)
		}
		for _, lines := range p.orders {
			order++
			exec(core, `INSERT INTO orders (id, user_id, total, tag) VALUES ($1, $2, $3, $4)`, order, p.id, float64(order)+0.5, p.tag)
			for l := 1; l <= lines; l++ {
				exec(core, `INSERT INTO order_items (order_id, line_no, sku, tag) VALUES ($1, $2, $3, $4)`, order, l, fmt.Sprintf("SKU-%d", l), p.tag)
			}
		}
		// One ticket found by the customer id alone (no email on it), the
		// others by their email as typed.
		ticket++
		exec(support, `INSERT INTO tickets (id, email, customer_id, body, tag) VALUES (?, NULL, ?, ?, ?)`, ticket, fmt.Sprint(p.id), "by id", p.tag)
		for _, e := range p.tickets {
			ticket++
			exec(support, `INSERT INTO tickets (id, email, customer_id, body, tag) VALUES (?, ?, NULL, ?, ?)`, ticket, e, "by email", p.tag)
		}
		for _, ph := range p.sms {
			sms++
			exec(support, `INSERT INTO sms_log (id, phone, text, tag) VALUES (?, ?, ?, ?)`, sms, ph, "your code", p.tag)
		}
		if p.redis {
			canonical := strings.ToLower(strings.TrimSpace(p.email))
			pipe := rdb.Pipeline()
			pipe.Set(ctx, prefix+fmt.Sprintf("session:%d", p.id), "token-"+p.tag, 0)
			pipe.HSet(ctx, prefix+"email_index", canonical, fmt.Sprint(p.id))
			pipe.SAdd(ctx, prefix+"newsletter", p.email) // as typed: mixed case
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Placeholder texts: the form's fake number, logged for many people.
	for range 5 {
		sms++
		exec(support, `INSERT INTO sms_log (id, phone, text, tag) VALUES (?, ?, ?, ?)`, sms, "2015550100", "placeholder", "placeholder")
	}
}

// tableRows maps each row of table, keyed by its primary key, to a hash
// of every column's value as the database returns it, with the row's tag.
type tableRows map[string]struct{ tag, sum string }

func readTable(t *testing.T, db *sql.DB, table string, key []string) tableRows {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := tableRows{}
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		var pk []string
		tag := ""
		for i, c := range cols {
			if vals[i] == nil {
				fmt.Fprintf(h, "%s=NULL;", c)
			} else {
				fmt.Fprintf(h, "%s=%q;", c, vals[i])
			}
			if slices.Contains(key, c) {
				pk = append(pk, string(vals[i]))
			}
			if c == "tag" {
				tag = string(vals[i])
			}
		}
		out[strings.Join(pk, "/")] = struct{ tag, sum string }{tag, hex.EncodeToString(h.Sum(nil))}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checksum is one hash over the rows of a table whose tag is not in
// skip, in key order: equal checksums mean those rows are byte-identical.
func (r tableRows) checksum(skip ...string) string {
	keys := make([]string, 0, len(r))
	for k, v := range r {
		if !slices.Contains(skip, v.tag) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s:%s\n", k, r[k].sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r tableRows) count(tag string) int64 {
	var n int64
	for _, v := range r {
		if v.tag == tag {
			n++
		}
	}
	return n
}

type shopTable struct {
	target, name string
	key          []string
	db           *sql.DB
}

// snapshot reads every table and the Redis keyspace of the prefix.
type snapshot struct {
	tables map[string]tableRows // "target/table"
	redis  map[string]string    // entry -> value, for every key, hash field and set member
}

func takeSnapshot(t *testing.T, tables []shopTable, rdb *redis.Client, prefix string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{tables: map[string]tableRows{}, redis: map[string]string{}}
	for _, tb := range tables {
		s.tables[tb.target+"/"+tb.name] = readTable(t, tb.db, tb.name, tb.key)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result() // the test's own prefix only
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch rdb.Type(ctx, k).Val() {
		case "string":
			s.redis["key "+k] = rdb.Get(ctx, k).Val()
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				s.redis["field "+k+" "+f] = v
			}
		case "set":
			for _, m := range rdb.SMembers(ctx, k).Val() {
				s.redis["member "+k+" "+m] = ""
			}
		}
	}
	return s
}

// redisEntries names the Redis entries of p, as a snapshot keys them.
func redisEntries(prefix string, p person) []string {
	return []string{
		fmt.Sprintf("key %ssession:%d", prefix, p.id),
		"field " + prefix + "email_index " + strings.ToLower(strings.TrimSpace(p.email)),
		"member " + prefix + "newsletter " + p.email,
	}
}

// redisOf counts the Redis entries of p in a snapshot.
func (s snapshot) redisOf(prefix string, p person) int64 {
	var n int64
	for _, e := range redisEntries(prefix, p) {
		if _, ok := s.redis[e]; ok {
			n++
		}
	}
	return n
}

// TestEraseExactlyTheSubject erases subjects from a shop spread over
// PostgreSQL, SQLite and Redis, where emails are stored in mixed case and
// phones in several formats, through all three API profiles: the native
// API (an email), s2s (a user id, HMAC-signed) and connect (a phone, with
// an OAuth token). Each request must take exactly the rows that were the
// subject's, with receipt counts equal to them, and leave every other row
// byte-identical; a phone two accounts share is held as ambiguous_subject
// with nothing changed; a placeholder phone shared by twelve accounts is
// not followed; a person the shop never knew completes as no_match.
func TestEraseExactlyTheSubject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	storeDSN, coreDSN := postgresDSN(t), postgresDSN(t)
	redisURL := testdb.RedisURL(t)
	prefix := testdb.RedisPrefix(t, redisURL)
	dir := t.TempDir()
	supportDSN := "file:" + filepath.Join(dir, "support.db") + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"

	core := openDB(t, "pgx", coreDSN)
	core.SetMaxOpenConns(2)
	support := openDB(t, "sqlite", supportDSN)
	support.SetMaxOpenConns(1)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.PoolSize = 2
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })

	people := subjectPeople()
	byTag := map[string]person{}
	for _, p := range people {
		byTag[p.tag] = p
	}
	seedSubjects(t, core, support, rdb, prefix, people)
	tables := []shopTable{
		{"core", "users", []string{"id"}, core},
		{"core", "addresses", []string{"id"}, core},
		{"core", "orders", []string{"id"}, core},
		{"core", "order_items", []string{"order_id", "line_no"}, core},
		{"support", "tickets", []string{"id"}, support},
		{"support", "sms_log", []string{"id"}, support},
	}

	key := randomKey(t)
	s2s := createClient(t, storeDSN, key, "partner-s2s", "--api-key", "subject-s2s-api-key-0123456789", "--secret", "subject-s2s-shared-secret-0123456789abcdef")
	createClient(t, storeDSN, key, "partner-connect", "--client-id", "subject-connect", "--client-secret", "subject-connect-client-secret-0123456789abcdef")
	srv := newServer(t, fmt.Sprintf(`db: %q
admin_token: ${LETHE_ADMIN_TOKEN}
workers: {concurrency: 4, backoff_base: 200ms, backoff_max: 2s, job_timeout: 20s}
targets:
  - name: core
    kind: sql
    driver: postgres
    dsn: %q
    default_region: US
    follow_limit: 10
    tables:
      - {name: users, root: true, identities: {email: email, phone: phone, user_id: id}, action: delete}
      - {name: addresses, references: {column: user_id, table: users}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
      - {name: order_items, primary_key: [order_id, line_no], references: {column: order_id, table: orders}, action: delete}
  - name: support
    kind: sql
    driver: sqlite
    dsn: %q
    default_region: US
    tables:
      - {name: tickets, identities: {email: email, user_id: customer_id}, action: delete}
      - {name: sms_log, identities: {phone: phone}, follow: [], action: delete}
  - name: cache
    kind: redis
    url: %q
    key_prefix: %q
    keys: ["session:{user_id}"]
    hashes: [{key: email_index, fields: ["{email}"]}]
    sets: [{key: newsletter, member: "{email}"}]
    resolve:
      - {key: email_index, field: "{email}", type: user_id, root: true}
`, storeDSN, coreDSN, supportDSN, redisURL, prefix), key)
	srv.start()
	connectTok := connectToken(t, srv.url, "subject-connect", "subject-connect-client-secret-0123456789abcdef")

	// The requests, one at a time so that each one's effect is measured
	// alone. submit returns the request id.
	native := func(typ, value string) string {
		var v requestView
		code, err := srv.do(ctx, http.MethodPost, "/v1/deletion-requests", nil, map[string]any{
			"identities": []map[string]string{{"type": typ, "value": value}},
		}, &v)
		if err != nil || code != http.StatusAccepted || v.ID == "" {
			t.Fatalf("native submit: %d, %v", code, err)
		}
		return v.ID
	}
	viaS2S := func(userID string) string {
		body := []byte(`{"user_id":"` + userID + `"}`)
		var out struct {
			ID string `json:"id"`
		}
		mustCall(t, http.MethodPost, srv.url+"/user_deletion_requests", s2sHeaders(s2s.APIKey, s2s.Secret, body), body, http.StatusOK, &out)
		if out.ID == "" {
			t.Fatal("s2s answered no id")
		}
		return out.ID
	}
	viaConnect := func(identifier string) string {
		var before, after struct {
			Data []struct{ ID string } `json:"data"`
		}
		mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests", bearer(connectTok), nil, 200, &before)
		r := mustCall(t, http.MethodPost, srv.url+"/v2/compliance/customers/delete", bearer(connectTok), []byte(`{"identifier":"`+identifier+`"}`), 200, nil)
		if string(r.body) != `{"success": true}` {
			t.Fatalf("connect delete answered %s", r.body)
		}
		mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests", bearer(connectTok), nil, 200, &after)
		if len(after.Data) != len(before.Data)+1 {
			t.Fatalf("connect client has %d requests after a delete, want %d", len(after.Data), len(before.Data)+1)
		}
		return after.Data[0].ID // newest first
	}

	var erased []string // tags whose rows are gone
	steps := []struct {
		name    string
		tag     string // the subject; "" for nobody
		submit  func() string
		outcome string
		status  string
		// unfollowed is what the request's reach must name as not followed.
		unfollowed []string
	}{
		{"native email in another case", "ada", func() string { return native("email", "ada.LOVELACE@example.COM") }, "erased", "completed", nil},
		{"s2s user id", "bob", func() string { return viaS2S("2") }, "erased", "completed", nil},
		{"connect phone stored as a national number", "carol", func() string { return viaConnect("+12015550199") }, "erased", "completed", nil},
		{"connect phone shared by two accounts", "", func() string { return viaConnect("+12015550777") }, "", "held", nil},
		{"native email of an account with a placeholder phone", "fay", func() string { return native("email", "fay@example.com") }, "erased", "completed", []string{"core/users.phone"}},
		{"native unknown person", "", func() string { return native("email", "nobody.known@example.com") }, "no_match", "completed", nil},
	}
	for _, st := range steps {
		before := takeSnapshot(t, tables, rdb, prefix)
		id := st.submit()
		done := waitRequest(t, srv, id, 60*time.Second)
		after := takeSnapshot(t, tables, rdb, prefix)

		var full struct {
			Status  string `json:"status"`
			Outcome string `json:"outcome"`
			Reach   struct {
				Accounts   map[string]int `json:"accounts"`
				Unfollowed []string       `json:"unfollowed"`
			} `json:"reach"`
		}
		mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests/"+id, bearer(adminToken), nil, 200, &full)
		if done.Status != st.status || full.Outcome != st.outcome {
			t.Errorf("%s: status %s outcome %q, want %s %q; tasks %+v", st.name, done.Status, full.Outcome, st.status, st.outcome, done.Tasks)
		}
		for _, u := range st.unfollowed {
			if !slices.Contains(full.Reach.Unfollowed, u) {
				t.Errorf("%s: reach.unfollowed = %v, want it to name %s", st.name, full.Reach.Unfollowed, u)
			}
		}

		switch {
		case st.status == "held":
			if full.Reach.Accounts["core/users"] != 2 {
				t.Errorf("%s: reach.accounts = %v, want core/users: 2", st.name, full.Reach.Accounts)
			}
			if len(done.Tasks) != 0 {
				t.Errorf("%s: tasks %+v, want none: nothing may run", st.name, done.Tasks)
			}
			// The partner's status call says why it waits.
			var status struct {
				Results []struct{ Identifier, Status, Outcome string } `json:"results"`
			}
			mustCall(t, http.MethodPost, srv.url+"/v2/compliance/customers/deletion/status", bearer(connectTok), []byte(`{"identifiers":["+12015550777"]}`), 200, &status)
			if len(status.Results) != 1 || (status.Results[0].Status != "pending" && status.Results[0].Status != "held") || status.Results[0].Outcome != "" {
				t.Errorf("%s: connect status = %+v, want it waiting without an outcome", st.name, status.Results)
			}
		case st.outcome == "erased":
			if full.Reach.Accounts["core/users"] != 1 {
				t.Errorf("%s: reach.accounts = %v, want core/users: 1", st.name, full.Reach.Accounts)
			}
		}

		// Every table: the subject's rows gone, every other row
		// byte-identical to before this request.
		skip := append(slices.Clone(erased), st.tag)
		for name, rows := range after.tables {
			if st.tag != "" && rows.count(st.tag) != 0 {
				t.Errorf("%s: %s still holds %d rows of the subject", st.name, name, rows.count(st.tag))
			}
			if rows.checksum(skip...) != before.tables[name].checksum(skip...) {
				t.Errorf("%s: rows of others in %s changed", st.name, name)
			}
		}
		var mine []string
		if st.tag != "" {
			mine = redisEntries(prefix, byTag[st.tag])
		}
		changed := 0
		for e, v := range before.redis {
			if got, ok := after.redis[e]; !slices.Contains(mine, e) && (!ok || got != v) {
				changed++
			}
		}
		if changed > 0 || len(after.redis) != len(before.redis)-int(before.redisOf(prefix, byTag[st.tag])) {
			t.Errorf("%s: %d redis entries of others changed or vanished; %d entries before, %d after", st.name, changed, len(before.redis), len(after.redis))
		}
		if n := after.redisOf(prefix, byTag[st.tag]); st.tag != "" && n != 0 {
			t.Errorf("%s: %d redis entries of the subject left", st.name, n)
		}

		// The receipt: signed, with the request's outcome, and counts equal
		// to the subject's rows that were there.
		if st.status == "completed" {
			want := map[string]map[string]int64{"core": {}, "support": {}}
			if st.tag != "" {
				for _, tb := range tables {
					if n := before.tables[tb.target+"/"+tb.name].count(st.tag); n > 0 {
						want[tb.target][tb.name] = n
					}
				}
			}
			checkSubjectReceipt(t, st.name, srv, id, st.outcome, want, before.redisOf(prefix, byTag[st.tag]))
		}
		if st.tag != "" && st.status == "completed" {
			erased = append(erased, st.tag)
		}
	}

	// Dan and Eve are both intact: the ambiguous request took nothing.
	final := takeSnapshot(t, tables, rdb, prefix)
	for _, tag := range []string{"dan", "eve", "ph7", "by18"} {
		if n := final.tables["core/users"].count(tag); n != 1 {
			t.Errorf("account %s: %d rows in users, want 1", tag, n)
		}
	}
	if n := final.tables["support/sms_log"].count("placeholder"); n != 5 {
		t.Errorf("placeholder texts left: %d, want all 5", n)
	}
}

// checkSubjectReceipt fetches the receipt of request id, checks its
// signature and outcome, and that every SQL object's rows equal want
// (objects absent from want must report 0) and the cache's total equals
// redisWant.
func checkSubjectReceipt(t *testing.T, step string, srv *server, id, outcome string, want map[string]map[string]int64, redisWant int64) {
	t.Helper()
	rc := mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests/"+id+"/receipt", bearer(adminToken), nil, 200, nil)
	keys := mustCall(t, http.MethodGet, srv.url+"/v1/signing-keys", nil, nil, 200, nil)
	checkReceipt(t, rc.body, keys.body, id, map[string]map[string]string{"core": nil, "support": nil, "cache": nil})
	var doc struct {
		Receipt struct {
			Outcome string `json:"outcome"`
			Targets []struct {
				Target string `json:"target"`
				Items  []struct {
					Object string `json:"object"`
					Rows   int64  `json:"rows"`
				} `json:"items"`
			} `json:"targets"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal(rc.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Receipt.Outcome != outcome {
		t.Errorf("%s: receipt outcome %q, want %q", step, doc.Receipt.Outcome, outcome)
	}
	for _, tg := range doc.Receipt.Targets {
		got := map[string]int64{}
		var total int64
		for _, it := range tg.Items {
			if it.Rows > 0 {
				got[it.Object] += it.Rows
			}
			total += it.Rows
		}
		if tg.Target == "cache" {
			if total != redisWant {
				t.Errorf("%s: receipt cache entries %d, want %d", step, total, redisWant)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want[tg.Target]) {
			t.Errorf("%s: receipt %s rows %v, want the rows that were there %v", step, tg.Target, got, want[tg.Target])
		}
	}
}
