package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"

	"github.com/lethe-privacy/lethe/internal/store"
)

// tableListener stands in for River's SQLite listener, which waits until
// its table holds a notification or its context ends.
type tableListener struct {
	riverdriver.Listener
	notes   chan *riverdriver.Notification
	stopped chan error // what each wait returned
}

func (l *tableListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	select {
	case n := <-l.notes:
		l.stopped <- nil
		return n, nil
	case <-ctx.Done():
		l.stopped <- ctx.Err()
		return nil, ctx.Err()
	}
}

func TestWakingListener(t *testing.T) {
	inner := &tableListener{notes: make(chan *riverdriver.Notification, 1), stopped: make(chan error, 4)}
	d := &sqliteDriver{wake: make(chan string, 16)}
	l := &wakingListener{Listener: inner, wake: d.wake}
	ctx := context.Background()
	wantInsert := func(n *riverdriver.Notification, err error, queue string) {
		t.Helper()
		if err != nil || n == nil || n.Topic != "river_insert" || n.Payload != `{"queue": "`+queue+`"}` {
			t.Fatalf("got %+v, %v; want the insert notification of queue %s", n, err, queue)
		}
	}

	// A wake while waiting ends the table's wait and answers at once.
	go func() {
		time.Sleep(20 * time.Millisecond)
		d.inserted([]string{"default"})
	}()
	n, err := l.WaitForNotification(ctx)
	wantInsert(n, err, "default")
	if err := <-inner.stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("the table's wait ended with %v; want it cancelled", err)
	}

	// A wake before the wait answers without waiting on the table.
	d.inserted([]string{"callbacks"})
	n, err = l.WaitForNotification(ctx)
	wantInsert(n, err, "callbacks")
	select {
	case err := <-inner.stopped:
		t.Errorf("the table was waited on (%v)", err)
	default:
	}

	// The table's own notifications still come through.
	table := &riverdriver.Notification{Topic: "river_leadership", Payload: "{}"}
	inner.notes <- table
	if n, err := l.WaitForNotification(ctx); err != nil || n != table {
		t.Fatalf("got %+v, %v; want the table's notification", n, err)
	}
	<-inner.stopped

	// A cancelled wait says so, whatever wake is pending.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.WaitForNotification(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v; want context.Canceled", err)
	}
}

// TestSQLiteWakeAfterCommit: jobs inserted in a transaction wake the
// workers once it has committed (a fetch before would find nothing), and
// never for one that rolled back.
func TestSQLiteWakeAfterCommit(t *testing.T) {
	st := openStore(t, "sqlite")
	p := build(t, st, Config{})
	e, ok := p.eng.(*riverEngine[*sqliteDriver, *sql.Tx])
	if !ok {
		t.Fatalf("engine is %T", p.eng)
	}
	wake := e.client.Driver().(*sqliteDriver).wake
	pending := func() []string {
		var out []string
		for {
			select {
			case q := <-wake:
				out = append(out, q)
			default:
				return out
			}
		}
	}
	ctx := context.Background()
	errRolledBack := errors.New("roll back")
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := p.EnqueueResolves(ctx, tx, []string{"req-a", "req-b"}); err != nil {
			return err
		}
		return errRolledBack
	})
	if !errors.Is(err, errRolledBack) {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 0 {
		t.Errorf("a rolled back insert woke %v", got)
	}
	err = st.InTx(ctx, func(tx store.Tx) error {
		if err := p.EnqueueResolves(ctx, tx, []string{"req-a", "req-b"}); err != nil {
			return err
		}
		if got := pending(); len(got) != 0 {
			t.Errorf("woke %v before the commit", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 1 || got[0] != "default" {
		t.Errorf("a committed insert of two jobs woke %v; want [default]", got)
	}
}
