package sqle2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
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
func storeFor(b backend) string {
	if b.driver == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

// TestEraseFiftySubjects erases 50 of 10,000 users (10 on MariaDB) through the native API,
// each named by one identity (email, user id or phone; resolve finds the
// rest), and proves with direct SQL that exactly their rows changed, as
// the data map says.
func TestEraseFiftySubjects(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.driver, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := newShop(t, b, shopUsers)
			in := startLethe(t, storeFor(b), b.driver, s.mapYAML())
			before := s.dump(t)
			seeded := time.Since(start)

			subjects := map[int64]bool{}
			ids := map[int64]string{}
			start = time.Now()
			count, step := int64(50), int64(200)
			if b.driver == "mysql" {
				// Erasing on MariaDB runs one job at a time and scans whole
				// tables (see startLethe): 10 subjects keep CI fast.
				count, step = 10, 1000
			}
			for k := int64(0); k < count; k++ {
				// Users 1, 201, 401, ...: user1@ is a prefix of user10@ and
				// user100@, which stay.
				i := 1 + step*k
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
				b.driver, shopUsers, len(before.rows["orders"]), len(before.rows["order_items"]), seeded.Round(time.Millisecond), count, erased.Round(time.Millisecond))
		})
	}
}
