package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// benchRows is the size of the import BenchmarkImport10k measures.
const benchRows = 10_000

// BenchmarkImport10k measures one 10,000-row import on SQLite, from the
// validation of the file to the last row stored, with the pipeline not
// running (so its workers do not compete for the write lock):
//
//	go test -run '^$' -bench Import10k -benchtime 1x ./internal/console/
func BenchmarkImport10k(b *testing.B) {
	for range b.N {
		st := testdb.OpenStore(b, "sqlite")
		e := newEnv(b, st).con
		var csv strings.Builder
		csv.WriteString("email,regulation\n")
		for i := range benchRows {
			fmt.Fprintf(&csv, "bench.%05d@example.com,gdpr\n", i)
		}
		start := time.Now()
		rows, rep, err := e.validateCSV(strings.NewReader(csv.String()))
		if err != nil || rep.Valid != benchRows {
			b.Fatalf("validate: %v, %d valid", err, rep.Valid)
		}
		ctx := context.Background()
		if err := st.CreateImport(ctx, store.Import{ID: "01a25000-0000-7000-8000-000000000001", Operator: "bench", CreatedAt: time.Now()}, rows); err != nil {
			b.Fatal(err)
		}
		for {
			worked, err := e.runOneImport(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !worked {
				break
			}
		}
		d := time.Since(start)
		imp, err := st.GetImport(ctx, "01a25000-0000-7000-8000-000000000001")
		if err != nil || imp.Created != benchRows {
			b.Fatalf("import: %+v, %v", imp, err)
		}
		b.ReportMetric(d.Seconds(), "s/import")
		b.ReportMetric(benchRows/d.Seconds(), "rows/s")
	}
}
