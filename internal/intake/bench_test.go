package intake

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// BenchmarkSubmit submits b.N new requests from 32 concurrent submitters
// (so group commits form as under load) through intake on each store,
// with the real pipeline's job insert, and reports the process's CPU per
// request (getrusage: SQLite runs in the process, PostgreSQL's server does
// not), statements and commits per request, and requests/s. Profile with
// -cpuprofile:
//
//	go test -run '^$' -bench Submit -benchtime 3000x -cpuprofile cpu.out ./internal/intake
func BenchmarkSubmit(b *testing.B) {
	for _, dialect := range testdb.Dialects {
		b.Run(dialect, func(b *testing.B) {
			c := &stmtCount{quiet: true}
			s := budgetService(b, dialect, c)
			ctx := context.Background()
			var next atomic.Int64
			c.take()
			b.SetParallelism(16) // 32 submitters on 2 cores
			testdb.PerRequest(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						sub := Submission{Actor: lethe.ActorClient, ClientID: "partner",
							Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("user-", i)}}}
						if _, out, err := s.Submit(ctx, sub); err != nil || out != Created {
							b.Errorf("submit: %v %v", out, err)
							return
						}
					}
				})
			})
			n, commits, _ := c.take()
			b.ReportMetric(float64(n)/float64(b.N), "stmts/req")
			b.ReportMetric(float64(commits)/float64(b.N), "commits/req")
		})
	}
}
