// Package sqlconn is the connector for SQL databases: PostgreSQL, MySQL /
// MariaDB and SQLite, through database/sql (drivers pgx, go-sql-driver/mysql
// and modernc.org/sqlite). Everything that differs between them lives in
// dialect.go.
//
// # Data map
//
//	targets:
//	  - name: shop
//	    kind: sql
//	    driver: postgres            # postgres | mysql | sqlite
//	    dsn: ${SHOP_DSN}
//	    batch_size: 1000            # rows per transaction; default 1000
//	    max_connections: 10         # pool size, kept open when idle; default 10 (the pipeline's workers)
//	    hash_key: ${LETHE_HASH_KEY} # >= 16 bytes; needed by hash and redact_email
//	    default_region: GB          # phones stored as national numbers; optional
//	    follow_limit: 10            # never follow a value matching more root rows; default 10
//	    tables:
//	      - name: users
//	        root: true              # the subject's accounts
//	        primary_key: id         # default "id"; a list for a composite key
//	        identities: {email: email, phone: phone, user_id: id}  # identity type -> column
//	        match: {phone: exact}   # optional: exact | case_insensitive | phone
//	        follow: [id, email]     # optional: columns Resolve follows
//	        action: delete
//	      - name: addresses
//	        references: {column: user_id, table: users, to: id}     # addresses.user_id -> users.id
//	        action: delete
//	      - name: orders
//	        identities: {email: email}
//	        references: {column: user_id, table: users}             # "to" defaults to the parent's primary key
//	        action: pseudonymize
//	        columns:
//	          user_id: null            # set NULL
//	          email: redact_email      # erased+<16 hex of HMAC>@invalid
//	          shipping_name: null
//	          note: {fixed: "erased"}  # a fixed value
//	          customer_ref: hash       # hex HMAC-SHA256(hash_key, value): a stable pseudonym
//	          token: random            # 32 random hex digits
//	      - name: order_items
//	        references: {column: order_id, table: orders}
//	        action: delete
//	      - name: support_tickets
//	        identities: {email: email}
//	        references:                # several parents: a list
//	          - {column: order_id, table: orders}
//	        action: delete
//	      - name: invoices
//	        references: {column: user_id, table: users}
//	        action: retain
//	        reason: "tax law: invoices kept 10 years"
//	        until: 2036-01-01          # optional
//
// Table names may be schema-qualified (billing.invoices). Names must be
// plain identifiers; they are quoted for the dialect in every statement,
// and identity values only ever travel as query parameters.
//
// # Which rows are the subject's
//
// A row of a table belongs to the subject when one of its identity columns
// holds one of the subject's values of that type under the column's match
// rule, or when one of its references points at a subject's row of the
// parent, recursively. Rules default by identity type (email
// case_insensitive, phone phone, others exact) and are overridden per
// column with match:; see docs/datamap.md for the rules, the indexes that
// serve them, root tables (root: true), followed columns (follow:),
// follow_limit and default_region. Rules SQL cannot decide exactly (phone,
// case_insensitive, and exact on MySQL text columns, whose collations are
// case- and accent-insensitive) select candidates in SQL and confirm each
// in Go, then act by primary key; one operation (a Resolve with all its
// rounds, a Plan, an Erase or EraseBatch, a Verify) asks the database
// about each value of each column once. Against integer (and PostgreSQL uuid)
// columns only values of that shape are compared: "42abc" never matches
// user 42. A column whose type the subject lacks yields no work.
//
// primary_key may list several columns (primary_key: [appointment_id,
// line_no]): batches select, lock, delete and update by the whole key
// (row values), and a reference to such a table names its column with to.
//
// Resolve follows only followed columns and never a value matching more
// than follow_limit rows of a root table; ResolveSubject
// (connector.SubjectResolver) also reports the root rows reached and the
// columns whose values were not followed.
//
// # Erase
//
// Tables are processed children before parents (over references, any
// number of hops), so a child is found through its parent before the link
// is cut, and foreign keys hold. Changes go in transactions of up to
// batch_size changed rows, whatever tables they span: a subject with a few
// rows in each table is one transaction and one commit, as hand-written
// SQL would do it; a large one commits every batch_size rows, keeping
// locks short. A delete is one statement per batch on PostgreSQL and
// SQLite (DELETE ... WHERE key IN (SELECT key ... LIMIT n) RETURNING the
// values the ledger keeps); on MySQL/MariaDB, and for tables with declared
// cascades, a batch selects and locks its primary keys through the
// indexes, then deletes exactly those rows by primary key, so concurrent
// erasures of different subjects lock disjoint rows. A failed statement
// rolls back its transaction only; Erase then matches the rows afresh (a
// row it already pseudonymized is not found, nor counted, again) and runs
// again committing after every table, so the tables before the failing one
// are erased and reported and the error is the same; a failed erasure's
// report still counts the retained rows.
//
// EraseBatch (connector.BatchEraser) erases several subjects the same
// way in shared transactions, in the statements of one subject: one
// candidate statement for every matched column and all of them, one
// ledger read, one statement per table for all of them, one ledger write
// per transaction. Each changed row is given to the first subject that
// matches it by a CASE the database evaluates on the row (returned by the
// DELETE, or read by the SELECT ... FOR UPDATE that locks the rows first),
// so each report is exact; retained rows are counted after the last
// commit, per subject through the parent rows it erased itself. A batch
// whose statements would exceed the dialect's parameter limit is erased
// as two, one after the other. VerifyBatch (connector.BatchVerifier)
// verifies several subjects in the statements of one Verify.
//
// delete removes rows; pseudonymize rewrites the listed columns (one
// UPDATE per batch on PostgreSQL, one per 256 rows on MySQL and SQLite);
// retain changes nothing and reports the rows kept with the reason and
// until date.
//
// pseudonymize must rewrite every column that links a row to the subject:
// its identity columns and its reference columns. New refuses a map that
// does not. A pseudonymized row then matches nothing, which is what makes
// Verify pass and a re-run leave it alone: hashes are never applied twice
// and rows are never counted twice.
//
// A crash mid-Erase leaves whole batches committed; the next run finds only
// what is left, so erasing converges. Each report counts the rows changed
// by that call; on error Erase still returns the report of what it
// committed. The rows of an attempt that died without returning would be
// missing from a sum of reports, so each transaction also writes its
// counts per request and table (and its declared cascades' counts, taken
// before the delete) into the lethe_erasure_ledger table, and Changed
// (connector.Ledger) reads the request's exact totals back: a batch and
// its count commit together or not at all. The same batch keeps, in
// lethe_erasure_keys, the referenced values (users.id, orders.id) of the
// rows it erased, so Erase and Verify find a child row written after its
// parent was deleted by those values, and by the subject's identity values
// where the referenced column is an identity column. Verify drops the kept
// values once it passes. Both tables are created on first use (see
// ledger.go) and never appear in map check or discover. Retained rows
// are counted as they stand, found through parents and kept keys alike.
//
// # Checks
//
// New checks the map itself: driver, names, actions and what each needs,
// strategies, unknown parents, reference cycles, tables no identity can
// reach, pseudonymize covering its linking columns. Validate checks the
// live schema: tables and columns exist and text-producing strategies do
// not target integer columns. CheckSchema checks the map against the
// schema's constraints (foreign keys and their ON DELETE / ON UPDATE
// rules, NOT NULL, indexes) so that no erase can fail midway or change
// tables the map does not account for; tables whose rows the database
// itself deletes or unlinks are declared on the parent's entry:
//
//	tables:
//	  - name: users
//	    action: delete
//	    cascades: [invoices]     # invoices.user_id ... ON DELETE CASCADE
//
// and Plan counts them. Discover proposes a map from a schema.
// docs/datamap-check.md lists every finding.
//
// SQLite targets should use a DSN with _txlock=immediate and a busy
// timeout (file:shop.db?_txlock=immediate&_pragma=busy_timeout(5000)) so
// batches wait for the write lock instead of failing.
//
// # A full server
//
// A new connection the target's server refuses because it has as many as
// it allows (PostgreSQL SQLSTATE 53300, also a role's CONNECTION LIMIT;
// MySQL/MariaDB errors 1040 and 1203, and 1226 for max_user_connections)
// is tried again with backoff for up to 2 minutes (connlimit.DefaultWait),
// or until the call's context ends, and the wait is logged through
// slog.Default() naming the target, never the DSN or user. A call still
// refused after that fails with an error that is not Permanent: the
// pipeline retries the task later like any transient failure.
package sqlconn
