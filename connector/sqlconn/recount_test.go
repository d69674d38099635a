package sqlconn_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The recount schema: notes are found by their own email, which is
// case-insensitive and so matched by the keys confirmed at the start of a
// call, and pseudonymized. A blocker outside the map refuses the users'
// delete, which comes last (children first). Each user has one invoice,
// retained.
var recountDDL = slices.Concat(usersDDL, []string{
	`CREATE TABLE notes (id BIGINT PRIMARY KEY, user_id BIGINT, email VARCHAR(255), body VARCHAR(255))`,
	`CREATE TABLE blocker (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users (id))`,
	`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT)`,
})

const recountMap = `
  - name: users
    identities: {email: email, user_id: id}
    action: delete
  - name: addresses
    references: {column: user_id, table: users}
    action: delete
  - name: notes
    identities: {email: email}
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {email: redact_email, user_id: null, body: hash}
  - name: invoices
    references: {column: user_id, table: users}
    action: retain
    reason: kept for tax law
`

const recountNotes = 4 // per user

// recountDB seeds users 1 to 3, each with an address and recountNotes
// notes (ids user*100+i) carrying the user's email in another case, and
// a blocker row on each user in blocked.
func recountDB(tb testing.TB, b testdb.TargetDB, blocked ...int64) (*shop, string) {
	tb.Helper()
	s, dsn := newDB(tb, b, recountDDL...)
	for id := int64(1); id <= 3; id++ {
		s.exec(tb, `INSERT INTO users VALUES (?, ?)`, id, fmt.Sprintf("u%d@example.com", id))
		s.exec(tb, `INSERT INTO addresses VALUES (?, ?, ?)`, id*10, id, "Main St")
		s.exec(tb, `INSERT INTO invoices VALUES (?, ?)`, id*1000, id)
		for i := range int64(recountNotes) {
			s.exec(tb, `INSERT INTO notes VALUES (?, ?, ?, ?)`, id*100+i, id, fmt.Sprintf("U%d@Example.COM", id), fmt.Sprintf("body-%d", id*100+i))
		}
	}
	for _, id := range blocked {
		s.exec(tb, `INSERT INTO blocker VALUES (?, ?)`, id, id)
	}
	return s, dsn
}

func recountMAC(v string) string {
	h := hmac.New(sha256.New, []byte("0123456789abcdef-test-key"))
	h.Write([]byte(v))
	return hex.EncodeToString(h.Sum(nil))
}

// pseudonymized counts user's notes as they stand (ids user*100 up; a
// late note's too) that were rewritten, and fails on a row rewritten
// otherwise than once: body hashed from its own original value, not a
// hash of a hash.
func (s *shop) pseudonymized(tb testing.TB, user int64) int64 {
	tb.Helper()
	rows, err := s.db.Query(s.b.Rebind(`SELECT id, user_id, email, body FROM notes WHERE id >= ? AND id < ? ORDER BY id`), user*100, user*100+100)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var id int64
		var uid sql.NullInt64
		var email, body sql.NullString
		if err := rows.Scan(&id, &uid, &email, &body); err != nil {
			tb.Fatal(err)
		}
		if uid.Valid {
			if body.String != fmt.Sprintf("body-%d", id) {
				tb.Errorf("note %d: still linked but its body was rewritten", id)
			}
			continue
		}
		n++
		if want := recountMAC(fmt.Sprintf("body-%d", id)); body.String != want {
			tb.Errorf("note %d: body is not the hash of its own body: rewritten more than once", id)
		}
		if want := "erased+" + recountMAC(fmt.Sprintf("u%d@example.com", user))[:16] + "@invalid"; email.String != want {
			tb.Errorf("note %d: email not pseudonymized once from the user's address", id)
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

func recountSubject(user int64) connector.Subject {
	return connector.Subject{RequestID: "req-recount-" + strconv.FormatInt(user, 10),
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: fmt.Sprintf("u%d@example.com", user)}}}
}

// checkRecount checks the lines of a report (or of the ledger) for the
// subject of user.
func checkRecount(tb testing.TB, user int64, rep lethe.Report, notes, addresses, users int64) {
	tb.Helper()
	for _, want := range []struct {
		object string
		action lethe.Action
		rows   int64
	}{{"notes", lethe.ActionPseudonymize, notes}, {"addresses", lethe.ActionDelete, addresses}, {"users", lethe.ActionDelete, users}} {
		if got := rowsOf(rep, want.object, want.action); got != want.rows {
			tb.Errorf("user %d: the report claims %d %s rows %s, want %d (%s)", user, got, want.object, want.action, want.rows, reportLines(rep))
		}
	}
	// The user's invoice is kept, and every report says so, a failed
	// call's too.
	if got := rowsOf(rep, "invoices", lethe.ActionRetain); got != 1 {
		tb.Errorf("user %d: the report says %d invoices retained, want 1 (%s)", user, got, reportLines(rep))
	}
}

// A pseudonymized table commits some of its rows (transactions of
// batch_size rows end inside it), then the users' delete is refused and
// the erasure runs again table by table: the rows committed before must
// not be rewritten and counted again, though the keys confirmed at the
// start still select them. The report and the ledger say each note once,
// as the rows do; the retry once the blocker is gone counts only what it
// changed, a note written since included, and the ledger's total is each
// note once.
func TestEraseFailedRerunCountsEachRowOnce(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for _, size := range []int{2, 3, 1000} {
			t.Run("batch_size="+strconv.Itoa(size), func(t *testing.T) {
				ctx := context.Background()
				s, dsn := recountDB(t, b, 1)
				c := openMapBatch(t, b, dsn, recountMap, size)
				subj := recountSubject(1)
				first, err := c.Erase(ctx, subj)
				if err == nil {
					t.Fatal("Erase succeeded although the blocker references the user")
				}
				if got := s.pseudonymized(t, 1); got != recountNotes {
					t.Fatalf("%d notes pseudonymized by the failed call, want %d", got, recountNotes)
				}
				checkRecount(t, 1, first, recountNotes, 1, 0)
				changed, err := c.Changed(ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				checkRecount(t, 1, changed, recountNotes, 1, 0)

				s.exec(t, `DELETE FROM blocker`)
				// A late writer's note, with the address in yet another case.
				s.exec(t, `INSERT INTO notes VALUES (?, ?, ?, ?)`, 199, 1, " u1@EXAMPLE.com", "body-199")
				second, err := c.Erase(ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.pseudonymized(t, 1); got != recountNotes+1 {
					t.Fatalf("%d notes pseudonymized, want %d", got, recountNotes+1)
				}
				checkRecount(t, 1, second, 1, 0, 1)
				if changed, err = c.Changed(ctx, subj); err != nil {
					t.Fatal(err)
				}
				checkRecount(t, 1, changed, recountNotes+1, 1, 1)
				if err := c.Verify(ctx, subj); err != nil {
					t.Error(err)
				}
				if got := s.pseudonymized(t, 3); got != 0 {
					t.Errorf("%d notes of another user pseudonymized", got)
				}
			})
		}
	})
}

// The same in a batch of two subjects, both blocked: each subject's
// report, and the ledger, counts each of its notes once, on the failed
// batch and on the retry.
func TestEraseBatchFailedRerunCountsEachRowOnce(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for _, size := range []int{2, 3, 5, 1000} {
			t.Run("batch_size="+strconv.Itoa(size), func(t *testing.T) {
				ctx := context.Background()
				s, dsn := recountDB(t, b, 1, 2)
				c := openMapBatch(t, b, dsn, recountMap, size)
				subs := []connector.Subject{recountSubject(1), recountSubject(2)}
				first, err := c.EraseBatch(ctx, subs)
				if err == nil {
					t.Fatal("EraseBatch succeeded although the blocker references the users")
				}
				if len(first) != len(subs) {
					t.Fatalf("%d reports for %d subjects", len(first), len(subs))
				}
				for i, sub := range subs {
					user := int64(i + 1)
					if got := s.pseudonymized(t, user); got != recountNotes {
						t.Fatalf("user %d: %d notes pseudonymized by the failed batch, want %d", user, got, recountNotes)
					}
					checkRecount(t, user, first[i], recountNotes, 1, 0)
					changed, err := c.Changed(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					checkRecount(t, user, changed, recountNotes, 1, 0)
				}

				s.exec(t, `DELETE FROM blocker`)
				second, err := c.EraseBatch(ctx, subs)
				if err != nil {
					t.Fatal(err)
				}
				for i, sub := range subs {
					user := int64(i + 1)
					checkRecount(t, user, second[i], 0, 0, 1)
					changed, err := c.Changed(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					checkRecount(t, user, changed, recountNotes, 1, 1)
					if got := s.pseudonymized(t, user); got != recountNotes {
						t.Errorf("user %d: %d notes pseudonymized, want %d", user, got, recountNotes)
					}
				}
				if got := s.pseudonymized(t, 3); got != 0 {
					t.Errorf("%d notes of another user pseudonymized", got)
				}
				for i, err := range c.VerifyBatch(ctx, subs) {
					if err != nil {
						t.Errorf("subject %d: %v", i, err)
					}
				}
			})
		}
	})
}
