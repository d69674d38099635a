package sqlconn_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

// batchHarness erases alice (by phone), bob (by user id) and the person
// whose email differs from alice's by a Cyrillic letter (by email) in one
// batch; the other people are everyone else.
func batchHarness(b testdb.TargetDB, batch int) connectortest.BatchHarness {
	subjects := []struct {
		p  person
		id lethe.Identity
	}{
		{people[0], lethe.Identity{Type: lethe.IdentityPhone, Value: people[0].Phone.(string)}},
		{people[1], lethe.Identity{Type: lethe.IdentityUserID, Value: strconv.FormatInt(people[1].ID, 10)}},
		{people[2], lethe.Identity{Type: lethe.IdentityEmail, Value: people[2].Email.(string)}},
	}
	return connectortest.BatchHarness{Setup: func(tb testing.TB) connectortest.BatchFixture {
		s, dsn := newShop(tb, b)
		f := connectortest.BatchFixture{Connector: s.connector(tb, dsn, batch)}
		owners := map[string]int{}
		for i, sub := range subjects {
			f.Subjects = append(f.Subjects, connector.Subject{RequestID: "req-batch-" + strconv.Itoa(i), Identities: []lethe.Identity{sub.id}})
			owners[strconv.FormatInt(sub.p.ID, 10)] = i
		}
		f.Snapshot = func(tb testing.TB) ([]string, string) {
			mine := make([]strings.Builder, len(subjects))
			var others strings.Builder
			for _, t := range shopdb.Tables {
				lines, rowOwners := dumpRows(tb, s.db, t, "SELECT * FROM "+t+" ORDER BY id", "seed_owner")
				for k, l := range lines {
					w := &others
					if i, ok := owners[rowOwners[k]]; ok {
						w = &mine[i]
					}
					w.WriteString(l + "\n")
				}
			}
			out := make([]string, len(mine))
			for i := range mine {
				out[i] = mine[i].String()
			}
			return out, others.String()
		}
		f.Remaining = func(tb testing.TB, i int) int64 {
			return s.remaining(tb, subjects[i].p.ID, subjects[i].p.Email)
		}
		return f
	}}
}

// TestConformanceBatch runs the batch suite with every subject's rows in
// one transaction (batch_size 1000) and with transactions of two rows,
// which end inside a table, inside a subject and between subjects.
func TestConformanceBatch(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for _, batch := range []int{1000, 2} {
			t.Run("batch_size="+strconv.Itoa(batch), func(t *testing.T) {
				connectortest.ExerciseBatch(t, batchHarness(b, batch))
			})
		}
	})
}

// Erasures running at once on a pool of one connection: a transaction's
// statement met for the first time must not wait for a second connection
// to be prepared on (with every connection in a transaction, nothing would
// ever move).
func TestEraseConcurrentOnOneConnection(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newShop(t, b)
		c := openValidated(t, "shop", fmt.Sprintf(shopMap, b.Driver, strconv.Quote(dsn), 1000)+"max_connections: 1\n")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i, p := range []person{people[0], people[1], people[2]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sub := connector.Subject{RequestID: "req-one-conn-" + strconv.Itoa(i),
					Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email.(string)}}}
				if i == 2 {
					_, errs[i] = c.EraseBatch(ctx, []connector.Subject{sub})
				} else {
					_, errs[i] = c.Erase(ctx, sub)
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("erasure %d: %v", i, err)
			}
		}
		for _, p := range []person{people[0], people[1], people[2]} {
			if n := s.remaining(t, p.ID, p.Email); n != 0 {
				t.Errorf("%s: %d rows remain", p.Name, n)
			}
		}
	})
}
