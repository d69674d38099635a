package sqle2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// shopUsers is the size of the end-to-end shop: big enough that a query
// matching too much, or a missing WHERE, cannot hide among few rows.
const shopUsers = 10_000

// storeFor picks lethe's own store for a backend: PostgreSQL beside a
// PostgreSQL target (as a deployment that outgrew one machine would run),
// the embedded SQLite otherwise.
func storeFor(b testdb.TargetDB) string {
	if b.Driver == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

// TestEraseFiftySubjects erases 50 of 10,000 users through the native API,
// ten requests at a time, each named by one identity (email, user id or
// phone; resolve finds the rest), and proves with direct SQL that exactly
// their rows changed, as the data map says. The subjects come in
// neighbouring pairs (users 1 and 2, 201 and 202, ...), whose rows sit
// side by side in every table and index, so an erasure that locked more
// than its own rows would deadlock with its neighbour's: every task must
// finish in its first attempt.
func TestEraseFiftySubjects(t *testing.T) {
	t.Parallel()
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		start := time.Now()
		s := newShop(t, b, shopUsers)
		in := startLethe(t, storeFor(b), s.mapYAML())
		before := s.dump(t)
		seeded := time.Since(start)

		subjects := map[int64]bool{}
		ids := map[int64]string{}
		start = time.Now()
		const count = 50
		for k := int64(0); k < count; k++ {
			// Users 1, 2, 201, 202, 401, ...: user1@ is a prefix of
			// user10@ and user100@, which stay.
			i := 1 + 200*(k/2) + k%2
			subjects[i] = true
			var id identity
			switch k % 4 {
			case 0:
				id = identity{"email", fmt.Sprintf("user%d@example.com", i)}
			case 1:
				id = identity{"user_id", strconv.FormatInt(i, 10)}
			case 2:
				id = identity{"phone", fmt.Sprintf("+49 151 %d", 10000000+i)}
			case 3:
				// Intake lower-cases and trims; the stored address is lower case.
				id = identity{"email", fmt.Sprintf("  User%d@Example.COM ", i)}
			}
			ids[i] = in.submit(t, id)
		}
		for i, id := range ids {
			v := in.wait(t, id)
			if v.Status != "completed" {
				t.Fatalf("subject %d: request ended %s: %+v", i, v.Status, v.Tasks)
			}
			for _, task := range v.Tasks {
				if task.Attempts != 1 {
					t.Errorf("subject %d: erasing %s took %d attempts (last error: %s)", i, task.Target, task.Attempts, task.LastError)
				}
			}
			// The proof the API gives must match what was there.
			want := countRows(before, i)
			got := v.reported()
			for tbl, n := range want {
				if got[tbl] != n {
					t.Errorf("subject %d: report says %d rows of %s, the shop had %d", i, got[tbl], tbl, n)
				}
			}
		}
		erased := time.Since(start)

		after := s.dump(t)
		checkErased(t, before, after, subjects)
		t.Logf("%s: seeded %d users (%d orders, %d order items) in %s; %d requests erased in %s",
			b.Driver, shopUsers, len(before.rows["orders"]), len(before.rows["order_items"]), seeded.Round(time.Millisecond), count, erased.Round(time.Millisecond))
	})
}
