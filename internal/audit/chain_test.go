package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

type migrating interface {
	store.Store
	Migrate(context.Context) error
}

func openStore(t *testing.T, dialect string) store.Store {
	t.Helper()
	ctx := context.Background()
	kr, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var st migrating
	switch dialect {
	case "sqlite":
		st, err = sqlite.Open(ctx, testdb.SQLitePath(t), sqlite.Options{Keyring: kr})
	case "postgres":
		st, err = postgres.Open(ctx, testdb.PostgresDSN(t), postgres.Options{Keyring: kr, MaxConns: testdb.PostgresMaxConns})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// closedRequest stores a request that went received -> running ->
// completed, closed with a receipt: five events.
func closedRequest(t *testing.T, st store.Store, signer *audit.Signer) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR, Status: lethe.StatusReceived, Stage: lethe.StageResolve,
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "grace@example.com"}},
		SubjectKey: uuid.NewString(), ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
	}
	ev := func(tx store.Tx, typ string) error {
		return tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: time.Now(), Actor: lethe.ActorSystem, Type: typ,
			Details: map[string]string{"n": typ}})
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if err := ev(tx, "request.received"); err != nil {
			return err
		}
		if _, err := tx.UpdateRequestState(ctx, r.ID, nil, nil, lethe.StatusRunning, lethe.StageErase, time.Now()); err != nil {
			return err
		}
		if err := ev(tx, "request.running"); err != nil {
			return err
		}
		if _, err := tx.UpdateRequestState(ctx, r.ID, nil, nil, lethe.StatusCompleted, lethe.StageDone, time.Now()); err != nil {
			return err
		}
		if err := ev(tx, "request.completed"); err != nil {
			return err
		}
		return audit.CloseRequest(ctx, tx, signer, time.Now(), r.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// rawExec runs SQL straight on the database, as an attacker with write
// access would: ? placeholders, rewritten to $n for PostgreSQL.
func rawExec(t *testing.T, st store.Store, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch db := st.Driver().(type) {
	case *sql.DB:
		_, err = db.ExecContext(ctx, query, args...)
	case *pgxpool.Pool:
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i), 1)
		}
		_, err = db.Exec(ctx, query, args...)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestVerifyCatchesTampering(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, dialect)
			signer, _, err := audit.LoadSigner(ctx, st, nil, strings.Repeat("11", 32), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			keys, err := audit.KeyMap(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			intact := closedRequest(t, st, signer)

			// Each case tampers with a request of its own; the rest stay intact.
			cases := []struct {
				name   string
				tamper func(t *testing.T, id string, es []lethe.AuditEvent)
				seq    func(es []lethe.AuditEvent) int64 // where the break must be reported
				what   string
			}{
				{"edit", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `UPDATE audit_events SET type = 'request.failed' WHERE seq = ?`, es[2].Seq)
				}, func(es []lethe.AuditEvent) int64 { return es[2].Seq }, "altered"},
				{"edit details", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `UPDATE audit_events SET details = '{"n":"x"}' WHERE seq = ?`, es[1].Seq)
				}, func(es []lethe.AuditEvent) int64 { return es[1].Seq }, "altered"},
				{"delete", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `DELETE FROM audit_events WHERE seq = ?`, es[1].Seq)
				}, func(es []lethe.AuditEvent) int64 { return es[2].Seq }, "deleted"},
				{"delete first", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `DELETE FROM audit_events WHERE seq = ?`, es[0].Seq)
				}, func(es []lethe.AuditEvent) int64 { return es[1].Seq }, "earlier events were deleted"},
				{"reorder", func(t *testing.T, id string, es []lethe.AuditEvent) {
					// Move event 1 to the end: delete it, insert it again.
					e := es[1]
					rawExec(t, st, `DELETE FROM audit_events WHERE seq = ?`, e.Seq)
					var ts any = e.Time
					if dialect == "sqlite" {
						ts = e.Time.UnixMicro()
					}
					rawExec(t, st, `INSERT INTO audit_events (request_id, time, actor, actor_id, type, details, prev_hash, hash)
						VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.RequestID, ts, string(e.Actor), e.ActorID, e.Type, `{"n":"`+e.Type+`"}`, e.PrevHash, e.Hash)
				}, func(es []lethe.AuditEvent) int64 { return es[2].Seq }, "reordered"},
				{"truncate after receipt", func(t *testing.T, id string, es []lethe.AuditEvent) {
					// The receipt named event 3 (request.completed) as head;
					// dropping from there on leaves a valid but shorter chain.
					rawExec(t, st, `DELETE FROM audit_events WHERE request_id = ? AND seq >= ?`, id, es[2].Seq)
				}, func([]lethe.AuditEvent) int64 { return 0 }, "receipt names a chain of 3 events"},
				{"delete chain", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `DELETE FROM audit_events WHERE request_id = ?`, id)
				}, func([]lethe.AuditEvent) int64 { return 0 }, "no audit events"},
				{"edit receipt", func(t *testing.T, id string, es []lethe.AuditEvent) {
					rawExec(t, st, `UPDATE receipts SET body = replace(body, '"status":"completed"', '"status":"failed"') WHERE request_id = ?`, id)
				}, func([]lethe.AuditEvent) int64 { return 0 }, "signature does not verify"},
			}
			for _, tc := range cases {
				id := closedRequest(t, st, signer)
				es, err := st.ListAudit(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != 5 {
					t.Fatalf("%d events, want 5", len(es))
				}
				if p, err := audit.VerifyRequest(ctx, st, id, keys); err != nil || p != nil {
					t.Fatalf("%s: before tampering: %v %v", tc.name, p, err)
				}
				tc.tamper(t, id, es)
				rep, err := audit.VerifyAll(ctx, st, keys)
				if err != nil {
					t.Fatal(err)
				}
				var found *audit.Problem
				for i, p := range rep.Problems {
					if p.RequestID == intact {
						t.Errorf("%s: intact request reported: %s", tc.name, p)
					}
					if p.RequestID == id {
						found = &rep.Problems[i]
					}
				}
				if found == nil {
					t.Errorf("%s: not caught; problems: %v", tc.name, rep.Problems)
					continue
				}
				if found.Seq != tc.seq(es) || !strings.Contains(found.What, tc.what) {
					t.Errorf("%s: reported %q, want seq %d and %q", tc.name, found, tc.seq(es), tc.what)
				}
				// Leave the store clean for the next case's VerifyAll.
				rawExec(t, st, `DELETE FROM audit_events WHERE request_id = ?`, id)
				rawExec(t, st, `DELETE FROM receipts WHERE request_id = ?`, id)
				rawExec(t, st, `DELETE FROM requests WHERE id = ?`, id)
			}
			rep, err := audit.VerifyAll(ctx, st, keys)
			if err != nil || len(rep.Problems) != 0 || rep.Chains != 1 {
				t.Errorf("after cleanup: %+v %v", rep, err)
			}
		})
	}
}

// After a rotation, receipts signed by the retired key still verify, and
// the stored (sealed) key is the one every later start loads.
func TestKeyRotationKeepsOldReceiptsValid(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, dialect)
			kr, err := seal.New(make([]byte, seal.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			first, created, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
			if err != nil || !created {
				t.Fatalf("first start: created %v, %v", created, err)
			}
			again, created, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
			if err != nil || created || again.KeyID() != first.KeyID() {
				t.Fatalf("second start: %v created %v, %v", again, created, err)
			}
			old := closedRequest(t, st, first)
			newID, err := audit.RotateSigning(ctx, st, kr, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			second, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
			if err != nil || second.KeyID() != newID {
				t.Fatalf("after rotation: %v, %v", second, err)
			}
			closedRequest(t, st, second)
			env, _, err := audit.LoadSigner(ctx, st, kr, strings.Repeat("22", 32), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			closedRequest(t, st, env)
			keys, err := audit.KeyMap(ctx, st)
			if err != nil || len(keys) != 3 {
				t.Fatalf("keys = %v, %v", keys, err)
			}
			rep, err := audit.VerifyAll(ctx, st, keys)
			if err != nil || len(rep.Problems) != 0 || rep.Chains != 3 {
				t.Errorf("VerifyAll = %+v, %v", rep, err)
			}
			rec, err := st.GetReceipt(ctx, old, store.Scope{All: true})
			if err != nil || rec.KeyID != first.KeyID() {
				t.Fatalf("old receipt: %+v, %v", rec, err)
			}
			// The env key is current but not stored: starting without it says so.
			if _, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now()); err == nil || !strings.Contains(err.Error(), audit.EnvSigningKey) {
				t.Errorf("start without the current env key: %v", err)
			}
		})
	}
}
