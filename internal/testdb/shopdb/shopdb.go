// Package shopdb is the shop the SQL connector's tests erase from: one
// schema, portable across SQLite, PostgreSQL and MariaDB, filled with
// generated users (any number, server-side) and with the named people a
// test adds beside them.
package shopdb

import (
	"database/sql"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// DDL creates the shop. Every table has seed_owner, the id of the user who
// owns the row (0: nobody), which lethe never reads: it lets a test tell
// whose row is whose after pseudonymisation cut the links. Each foreign
// key closes its statement, so a loader can strip it and add it later.
var DDL = []string{
	`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32), customer_ref VARCHAR(256),
		name VARCHAR(255), seed_owner BIGINT NOT NULL)`,
	`CREATE TABLE addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, street VARCHAR(255), seed_owner BIGINT NOT NULL,
		FOREIGN KEY (user_id) REFERENCES users (id))`,
	`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, email VARCHAR(255), shipping_name VARCHAR(255), note VARCHAR(255),
		customer_ref VARCHAR(255), token VARCHAR(255), total BIGINT, seed_owner BIGINT NOT NULL,
		FOREIGN KEY (user_id) REFERENCES users (id))`,
	`CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(64), qty INT, seed_owner BIGINT NOT NULL,
		FOREIGN KEY (order_id) REFERENCES orders (id))`,
	`CREATE TABLE support_tickets (id BIGINT PRIMARY KEY, email VARCHAR(255), order_id BIGINT, body VARCHAR(255),
		seed_owner BIGINT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id))`,
	`CREATE TABLE ticket_messages (id BIGINT PRIMARY KEY, ticket_id BIGINT NOT NULL, body VARCHAR(255), seed_owner BIGINT NOT NULL,
		FOREIGN KEY (ticket_id) REFERENCES support_tickets (id))`,
	// No foreign key: invoices outlive the user they name.
	`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT, seed_owner BIGINT NOT NULL)`,
}

// Indexes are the indexes lethe needs (docs/performance.md): one on every
// identity column and every reference column of the data maps, or each
// erase scans whole tables.
var Indexes = []string{
	`CREATE INDEX users_email ON users (email)`,
	`CREATE INDEX users_phone ON users (phone)`,
	`CREATE INDEX users_customer_ref ON users (customer_ref)`,
	`CREATE INDEX addresses_user_id ON addresses (user_id)`,
	`CREATE INDEX orders_user_id ON orders (user_id)`,
	`CREATE INDEX orders_email ON orders (email)`,
	`CREATE INDEX order_items_order_id ON order_items (order_id)`,
	`CREATE INDEX support_tickets_email ON support_tickets (email)`,
	`CREATE INDEX support_tickets_order_id ON support_tickets (order_id)`,
	`CREATE INDEX ticket_messages_ticket_id ON ticket_messages (ticket_id)`,
	`CREATE INDEX invoices_user_id ON invoices (user_id)`,
}

// Tables lists the shop's tables, parents before children.
var Tables = []string{"users", "addresses", "orders", "order_items", "support_tickets", "ticket_messages", "invoices"}

// Person is a user a test adds beside the generated ones, by name, for
// the values it needs (hostile ones included).
type Person struct {
	ID          int64  // the user id, also the seed_owner of every row
	Name        string // names the rows: "Name <n>", "ref-<n>", "tok-<n>"
	Email       any    // string or nil
	Phone       any
	CustomerRef any
	// Guest adds order base+3 placed as a guest: no user_id, found by
	// email alone, with item 10*(base+3)+1.
	Guest bool
}

// Shop is one seeded database.
type Shop struct {
	B     testdb.TargetDB
	DSN   string
	DB    *sql.DB
	Users int64 // how many users were generated
}

// New creates the shop on a fresh database of b, generates users users
// (see Generate), adds people (see Add) and then creates the indexes.
func New(tb testing.TB, b testdb.TargetDB, users int64, people ...Person) *Shop {
	tb.Helper()
	dsn, db := b.Open(tb)
	s := &Shop{B: b, DSN: dsn, DB: db, Users: users}
	for _, stmt := range DDL {
		s.Exec(tb, stmt)
	}
	s.generate(tb)
	for _, p := range people {
		s.Add(tb, p)
	}
	for _, stmt := range Indexes {
		s.Exec(tb, stmt)
	}
	return s
}

// Exec runs stmt, written with ? placeholders, and fails the test on error.
func (s *Shop) Exec(tb testing.TB, stmt string, args ...any) {
	tb.Helper()
	if _, err := s.DB.Exec(s.B.Rebind(stmt), args...); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
}

// generate fills the shop server-side (INSERT ... SELECT over a table of
// numbers), which takes well under a second for 10,000 users. User i has:
//   - a users row with email user<i>@example.com, phone +49151<10000000+i>,
//     customer_ref cref-<i>;
//   - two addresses, two invoices (retained);
//   - order 2i-1 linked by user_id and email, order 2i by user_id only,
//     and for i%5 == 1 a guest order 2N+i found by email only;
//   - two items per order;
//   - ticket 2i-1 found by email only, ticket 2i through order 2i only.
//
// Strangers (owner 0) for i%7 == 1 hold tickets from user<i>@example.co,
// one letter short of user i's address; and user1@example.com is a
// prefix of user10@example.com, so sloppy matching would show. Every id
// stays at or below 6N.
func (s *Shop) generate(tb testing.TB) {
	tb.Helper()
	if s.Users == 0 {
		return
	}
	s.Exec(tb, `CREATE TABLE nums (i BIGINT PRIMARY KEY)`)
	for lo := int64(1); lo <= s.Users; lo += 1000 {
		var vals []string
		for i := lo; i < lo+1000 && i <= s.Users; i++ {
			vals = append(vals, "("+strconv.FormatInt(i, 10)+")")
		}
		// The values are our own integers, so building the statement is safe.
		s.Exec(tb, "INSERT INTO nums (i) VALUES "+strings.Join(vals, ", "))
	}
	n := strconv.FormatInt(s.Users, 10)
	for _, stmt := range []string{
		`INSERT INTO users (id, email, phone, customer_ref, name, seed_owner)
			SELECT i, CONCAT('user', i, '@example.com'), CONCAT('+49151', 10000000 + i), CONCAT('cref-', i), CONCAT('Name ', i), i FROM nums`,
		`INSERT INTO addresses (id, user_id, street, seed_owner) SELECT 2*i-1, i, CONCAT(i, ' Main St'), i FROM nums`,
		`INSERT INTO addresses (id, user_id, street, seed_owner) SELECT 2*i, i, CONCAT(i, ' Side St'), i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*i-1, i, CONCAT('user', i, '@example.com'), CONCAT('Ship ', i), 100 + i, i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*i, i, NULL, CONCAT('Ship ', i), 200 + i, i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*` + n + ` + i, NULL, CONCAT('user', i, '@example.com'), CONCAT('Guest ', i), 300 + i, i FROM nums WHERE i % 5 = 1`,
		`INSERT INTO order_items (id, order_id, sku, qty, seed_owner) SELECT 2*id-1, id, 'sku-a', 1, seed_owner FROM orders`,
		`INSERT INTO order_items (id, order_id, sku, qty, seed_owner) SELECT 2*id, id, 'sku-b', 2, seed_owner FROM orders`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner)
			SELECT 2*i-1, CONCAT('user', i, '@example.com'), NULL, 'help', i FROM nums`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner) SELECT 2*i, NULL, 2*i, 'where is my order', i FROM nums`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner)
			SELECT 2*` + n + ` + i, CONCAT('user', i, '@example.co'), NULL, 'near miss', 0 FROM nums WHERE i % 7 = 1`,
		`INSERT INTO invoices (id, user_id, amount, seed_owner) SELECT 2*i-1, i, 1000 + i, i FROM nums`,
		`INSERT INTO invoices (id, user_id, amount, seed_owner) SELECT 2*i, i, 2000 + i, i FROM nums`,
		`DROP TABLE nums`,
	} {
		s.Exec(tb, stmt)
	}
}

// Add inserts p with a full set of rows, with ids from base = 10*p.ID:
//   - addresses base+1 and base+2;
//   - orders base+1 and base+2, both linked by user_id and email, with a
//     note, customer_ref ref-<name> and token tok-<name>; items 10*order+1
//     of each and 10*order+2 of the first (three in all);
//   - ticket base+1 found by email only, ticket base+2 only through order
//     base+1, and messages 10*base+1 (on the first) and 10*base+2, +3 (on
//     the second): a three-hop chain users -> orders -> support_tickets ->
//     ticket_messages;
//   - invoices base+1 and base+2, amounts 100+k and 200+k for the k-th
//     person added;
//   - with p.Guest, guest order base+3 (see Person.Guest).
//
// p.ID must lie above the generated users' ids (N): then base exceeds
// every generated row's id (6N) and nothing collides.
func (s *Shop) Add(tb testing.TB, p Person) {
	tb.Helper()
	if p.ID <= s.Users {
		tb.Fatalf("person %d collides with the %d generated users", p.ID, s.Users)
	}
	var k int64
	if err := s.DB.QueryRow(s.B.Rebind(`SELECT COUNT(*) FROM users WHERE seed_owner > ?`), s.Users).Scan(&k); err != nil {
		tb.Fatal(err)
	}
	base := p.ID * 10
	s.Exec(tb, `INSERT INTO users (id, email, phone, customer_ref, name, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
		p.ID, p.Email, p.Phone, p.CustomerRef, "Name "+p.Name, p.ID)
	s.Exec(tb, `INSERT INTO addresses (id, user_id, street, seed_owner) VALUES (?, ?, ?, ?)`, base+1, p.ID, "1 Main St", p.ID)
	s.Exec(tb, `INSERT INTO addresses (id, user_id, street, seed_owner) VALUES (?, ?, ?, ?)`, base+2, p.ID, "2 Side St", p.ID)
	for o := int64(1); o <= 2; o++ {
		oid := base + o
		s.Exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, note, customer_ref, token, total, seed_owner)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			oid, p.ID, p.Email, "Ship "+p.Name, "leave at door", "ref-"+p.Name, "tok-"+p.Name, 100*o, p.ID)
		s.Exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, oid*10+1, oid, "sku-1", 1, p.ID)
		if o == 1 {
			s.Exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, oid*10+2, oid, "sku-2", 1, p.ID)
		}
	}
	s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+1, p.Email, nil, "help", p.ID)
	s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+2, nil, base+1, "where is my order", p.ID)
	s.Exec(tb, `INSERT INTO ticket_messages (id, ticket_id, body, seed_owner) VALUES (?, ?, ?, ?)`, base*10+1, base+1, "hi", p.ID)
	s.Exec(tb, `INSERT INTO ticket_messages (id, ticket_id, body, seed_owner) VALUES (?, ?, ?, ?)`, base*10+2, base+2, "hello", p.ID)
	s.Exec(tb, `INSERT INTO ticket_messages (id, ticket_id, body, seed_owner) VALUES (?, ?, ?, ?)`, base*10+3, base+2, "thanks", p.ID)
	s.Exec(tb, `INSERT INTO invoices (id, user_id, amount, seed_owner) VALUES (?, ?, ?, ?)`, base+1, p.ID, 100+k, p.ID)
	s.Exec(tb, `INSERT INTO invoices (id, user_id, amount, seed_owner) VALUES (?, ?, ?, ?)`, base+2, p.ID, 200+k, p.ID)
	if p.Guest {
		s.Exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
			base+3, nil, p.Email, "Guest "+p.Name, 300, p.ID)
		s.Exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, (base+3)*10+1, base+3, "sku-1", 1, p.ID)
	}
}
