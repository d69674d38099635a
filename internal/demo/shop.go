package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tables lists the shop's tables, parents before children.
var Tables = []string{"users", "addresses", "orders", "order_items", "support_tickets", "invoices"}

// ddl is portable between SQLite and PostgreSQL, the two drivers the demo
// (and its tests) run the shop on. Invoices have no foreign keys: they
// outlive the customer they name.
var ddl = []string{
	`CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, email VARCHAR(254) NOT NULL, phone VARCHAR(16),
		first_name VARCHAR(100) NOT NULL, last_name VARCHAR(100) NOT NULL, created_at VARCHAR(32) NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id),
		street VARCHAR(200) NOT NULL, city VARCHAR(100) NOT NULL, postcode VARCHAR(16) NOT NULL, country VARCHAR(2) NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, user_id BIGINT REFERENCES users (id), email VARCHAR(254),
		shipping_name VARCHAR(200), shipping_phone VARCHAR(16), total_cents BIGINT NOT NULL, placed_at VARCHAR(32) NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL REFERENCES orders (id),
		sku VARCHAR(32) NOT NULL, product VARCHAR(100) NOT NULL, quantity BIGINT NOT NULL, price_cents BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS support_tickets (id BIGINT PRIMARY KEY, email VARCHAR(254), order_id BIGINT REFERENCES orders (id),
		subject VARCHAR(200) NOT NULL, body VARCHAR(2000) NOT NULL, opened_at VARCHAR(32) NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, order_id BIGINT NOT NULL,
		billing_name VARCHAR(200) NOT NULL, billing_email VARCHAR(254) NOT NULL, amount_cents BIGINT NOT NULL, issued_at VARCHAR(32) NOT NULL)`,
	// Marks a finished seed; written in the seeding transaction, so a
	// crash mid-seed leaves nothing and the next start seeds again.
	`CREATE TABLE IF NOT EXISTS demo_seed (seed VARCHAR(32) NOT NULL, people BIGINT NOT NULL, seeded_at VARCHAR(32) NOT NULL)`,
}

type product struct {
	sku   string
	name  string
	cents int64
}

var products = []product{
	{"TEA-EB-100", "English breakfast tea, 100 bags", 649},
	{"MUG-ST-350", "Stoneware mug, 350 ml", 1299},
	{"KET-GL-17", "Glass kettle, 1.7 l", 3999},
	{"BEAN-ET-500", "Ethiopian coffee beans, 500 g", 1450},
	{"GRND-BURR-1", "Burr grinder", 8900},
	{"FLT-V60-02", "Pour-over dripper", 2250},
	{"PAP-V60-100", "Paper filters, 100", 599},
	{"SCL-01G", "Kitchen scale, 0.1 g", 2799},
	{"TIN-AIR-1", "Airtight coffee tin", 1899},
	{"CHOC-70-100", "Dark chocolate 70%, 100 g", 349},
}

var ticketSubjects = []string{
	"Where is my order?",
	"Wrong item delivered",
	"Please change my delivery address",
	"Damaged in transit",
	"Question about my invoice",
	"Cancel my subscription",
}

// Counts are how many rows each table was seeded with.
type Counts map[string]int

// Create makes the shop's tables and fills them with People(n), their
// addresses, orders, order items, support tickets and invoices, in one
// transaction. It is idempotent: a database that was seeded before (even
// if rows were erased since) is left as it is, and seeded reports false.
// driver is "sqlite" or "postgres" (the database/sql driver behind db is
// modernc's sqlite or pgx's stdlib).
func Create(ctx context.Context, db *sql.DB, driver string, n int) (counts Counts, seeded bool, err error) {
	if driver != "sqlite" && driver != "postgres" {
		return nil, false, fmt.Errorf("demo: driver %q is not supported (sqlite or postgres)", driver)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("demo: begin: %w", err)
	}
	defer tx.Rollback()
	for _, stmt := range ddl {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, false, fmt.Errorf("demo: create tables: %w", err)
		}
	}
	var done int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM demo_seed`).Scan(&done); err != nil {
		return nil, false, fmt.Errorf("demo: read seed mark: %w", err)
	}
	if done > 0 {
		return nil, false, tx.Commit()
	}
	w := &writer{ctx: ctx, tx: tx, driver: driver}
	counts = fill(w, n)
	if w.err != nil {
		return nil, false, fmt.Errorf("demo: seed: %w", w.err)
	}
	if _, err := tx.ExecContext(ctx, Rebind(w.driver, `INSERT INTO demo_seed (seed, people, seeded_at) VALUES (?, ?, ?)`),
		strconv.FormatUint(Seed, 16), n, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return nil, false, fmt.Errorf("demo: write seed mark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("demo: commit: %w", err)
	}
	return counts, true, nil
}

// fill generates every row from the people and a second generator stream,
// so the shop's contents depend on n and Seed alone.
func fill(w *writer, n int) Counts {
	people := People(n)
	r := &rng{s: Seed ^ 0x5eed_0f_0de7}
	var users, addresses, orders, items, tickets, invoices [][]any
	var orderID, itemID, ticketID int64
	work := &workEmails{used: map[string]bool{}, of: map[int64]string{}}
	for _, p := range people {
		work.used[p.Email] = true
	}
	for _, p := range people {
		users = append(users, []any{p.ID, p.Email, p.Phone, p.FirstName, p.LastName, stamp(p.CreatedAt)})
		addresses = append(addresses, []any{p.ID * 10, p.ID, p.Street, p.City, p.Postcode, p.Country})
		if r.intn(4) == 0 { // a second address: work, or a parent's
			addresses = append(addresses, []any{p.ID*10 + 1, p.ID, fmt.Sprintf("%d %s", 1+r.intn(99), "Commerce Way"), p.City, p.Postcode, p.Country})
		}
		name := p.FirstName + " " + p.LastName
		for range r.intn(5) {
			orderID++
			placed := p.CreatedAt.Add(time.Duration(1+r.intn(500*24)) * time.Hour)
			var total int64
			for range 1 + r.intn(3) {
				itemID++
				pr := products[r.intn(len(products))]
				qty := int64(1 + r.intn(3))
				total += qty * pr.cents
				items = append(items, []any{itemID, orderID, pr.sku, pr.name, qty, pr.cents})
			}
			orders = append(orders, []any{orderID, p.ID, p.Email, name, p.Phone, total, stamp(placed)})
			invoices = append(invoices, []any{orderID, p.ID, orderID, name, p.Email, total, stamp(placed.Add(time.Hour))})
			if r.intn(6) == 0 {
				// A ticket about an order, written from another address: the
				// shop only knows it is this customer's through the order,
				// and resolve learns the second address from it.
				ticketID++
				alt := work.get(p)
				tickets = append(tickets, []any{ticketID, alt, orderID, r.pick(ticketSubjects), "Hello, order " + strconv.FormatInt(orderID, 10) + " please.", stamp(placed.Add(72 * time.Hour))})
			}
		}
		if r.intn(5) == 0 {
			// A question before buying anything: found by email alone.
			ticketID++
			tickets = append(tickets, []any{ticketID, p.Email, nil, "Do you ship to " + p.City + "?", "Thanks, " + p.FirstName, stamp(p.CreatedAt.Add(time.Hour))})
		}
	}
	w.insert("users", []string{"id", "email", "phone", "first_name", "last_name", "created_at"}, users)
	w.insert("addresses", []string{"id", "user_id", "street", "city", "postcode", "country"}, addresses)
	w.insert("orders", []string{"id", "user_id", "email", "shipping_name", "shipping_phone", "total_cents", "placed_at"}, orders)
	w.insert("order_items", []string{"id", "order_id", "sku", "product", "quantity", "price_cents"}, items)
	w.insert("support_tickets", []string{"id", "email", "order_id", "subject", "body", "opened_at"}, tickets)
	w.insert("invoices", []string{"id", "user_id", "order_id", "billing_name", "billing_email", "amount_cents", "issued_at"}, invoices)
	return Counts{
		"users": len(users), "addresses": len(addresses), "orders": len(orders),
		"order_items": len(items), "support_tickets": len(tickets), "invoices": len(invoices),
	}
}

// workEmails hands out each customer's second address, unique like the
// first: an address shared by two customers would make erasing one erase
// the other's tickets. A customer keeps the same one across tickets.
type workEmails struct {
	used map[string]bool
	of   map[int64]string
}

func (w *workEmails) get(p Person) string {
	if e, ok := w.of[p.ID]; ok {
		return e
	}
	base := localPart(p.FirstName) + "." + localPart(p.LastName)
	e := base + "@work.example.org"
	for i := 2; w.used[e]; i++ {
		e = base + strconv.Itoa(i) + "@work.example.org"
	}
	w.used[e] = true
	w.of[p.ID] = e
	return e
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// writer inserts many rows per statement (a few thousand single-row
// inserts take seconds on PostgreSQL) and keeps the first error.
type writer struct {
	ctx    context.Context
	tx     *sql.Tx
	driver string
	err    error
}

// insertBatch keeps each statement well under SQLite's 32766 and
// PostgreSQL's 65535 parameter limits.
const insertBatch = 200

func (w *writer) insert(table string, cols []string, rows [][]any) {
	for start := 0; start < len(rows) && w.err == nil; start += insertBatch {
		chunk := rows[start:min(start+insertBatch, len(rows))]
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
		args := make([]any, 0, len(chunk)*len(cols))
		for i, row := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(row)), ", ") + ")")
			args = append(args, row...)
		}
		if _, err := w.tx.ExecContext(w.ctx, Rebind(w.driver, b.String()), args...); err != nil {
			w.err = fmt.Errorf("insert into %s: %w", table, err)
		}
	}
}

// Rebind turns the ? placeholders of stmt into PostgreSQL's $n when
// driver is "postgres", and returns it unchanged otherwise. The statements
// it is given hold no string literals, so every ? is a placeholder; the
// shop's tests write theirs the same way.
func Rebind(driver, stmt string) string {
	if driver != "postgres" {
		return stmt
	}
	var b strings.Builder
	n := 0
	for _, c := range stmt {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Customer is what the walkthrough needs of one customer still in the
// shop.
type Customer struct {
	ID    int64
	Email string
	Phone string
}

// Customers returns up to n customers still in the shop, lowest id first,
// so that after a walkthrough erased some, the next start shows people who
// are still there.
func Customers(ctx context.Context, db *sql.DB, n int) ([]Customer, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, email, phone FROM users ORDER BY id LIMIT `+strconv.Itoa(n))
	if err != nil {
		return nil, fmt.Errorf("demo: list customers: %w", err)
	}
	defer rows.Close()
	var out []Customer
	for rows.Next() {
		var c Customer
		var phone sql.NullString
		if err := rows.Scan(&c.ID, &c.Email, &phone); err != nil {
			return nil, fmt.Errorf("demo: list customers: %w", err)
		}
		c.Phone = phone.String
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("demo: list customers: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("demo: the shop has no customers left; delete the demo shop database to start over")
	}
	return out, nil
}

// RetentionReason is why the data map keeps invoices.
const RetentionReason = "tax law: invoices are kept for 10 years"

// TargetName is the demo shop's name in the data map.
const TargetName = "demo-shop"

// TargetYAML returns the demo shop's entry of a lethe configuration's
// targets list, indented to sit under "targets:". It is parsed by the
// same config loader and checked by the same SQL connector as any real
// target: the demo takes no shortcut a real deployment would not.
func TargetYAML(driver, dsn, hashKey string) string {
	return fmt.Sprintf(`  - name: %s
    kind: sql
    driver: %s
    dsn: %s
    hash_key: %s
    tables:
      - name: users
        root: true                    # the subject's accounts: only their columns are followed
        identities: {email: email, phone: phone, user_id: id}
        action: delete
      - name: addresses
        references: {column: user_id, table: users}
        action: delete
      - name: orders
        identities: {email: email}
        references: {column: user_id, table: users}
        action: pseudonymize          # keep sales figures, drop the person
        columns:
          user_id: null
          email: redact_email
          shipping_name: {fixed: "erased"}
          shipping_phone: null
      - name: order_items
        references: {column: order_id, table: orders}
        action: delete
      - name: support_tickets
        identities: {email: email}
        follow: [email]               # a ticket's address is its writer's: resolve learns second addresses here
        references: {column: order_id, table: orders}
        action: delete
      - name: invoices
        identities: {email: billing_email}
        references: {column: user_id, table: users}
        action: retain
        reason: %s
`, TargetName, driver, yamlString(dsn), yamlString(hashKey), yamlString(RetentionReason))
}

// yamlString quotes s for YAML: a JSON string is a valid YAML
// double-quoted scalar, whatever s holds.
func yamlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
