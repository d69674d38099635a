package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
)

// smallDisk mounts a tmpfs of the given size for the test, or skips when
// the test cannot mount (it needs root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mounting a %s tmpfs needs root (run the suite as root to test a full disk): %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes zeros to path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil && !errors.Is(err, os.ErrExist) {
		t.Logf("create filler: %v", err)
		return
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}

// fillOnErase is the shop's SQL connector that fills the store's disk the
// first time Erase is called, after the target has committed: the
// pipeline's bookkeeping of that attempt (its progress, the task's end,
// River's own row) then meets a full disk.
type fillOnErase struct {
	*sqlconn.Connector
	once   sync.Once
	before bool // fill before the target's erase rather than after it
	filled chan struct{}
	fill   func()
}

func (f *fillOnErase) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	f.fillIf(f.before)
	rep, err := f.Connector.Erase(ctx, s)
	f.fillIf(true)
	return rep, err
}

// EraseBatch is the path the pipeline takes for sqlconn (a
// connector.BatchEraser): the disk fills around it the same way.
func (f *fillOnErase) EraseBatch(ctx context.Context, subjects []connector.Subject) ([]lethe.Report, error) {
	f.fillIf(f.before)
	reps, err := f.Connector.EraseBatch(ctx, subjects)
	f.fillIf(true)
	return reps, err
}

// fillIf fills the disk, once, when now is true.
func (f *fillOnErase) fillIf(now bool) {
	if now {
		f.once.Do(func() {
			f.fill()
			close(f.filled)
		})
	}
}

// TestFullStoreDiskDuringErase runs a request whose store (SQLite) fills
// its disk right after the target committed the erasure, then frees it. A
// request may complete only when its rows are gone, and its counts are
// those the target changed, whatever writes failed on the way.
func TestFullStoreDiskDuringErase(t *testing.T) {
	for _, tc := range []struct {
		name        string
		before      bool // the disk fills before the target's erase
		targetThere bool // the target's database shares the full disk (as in lethe demo)
	}{
		{"after the target committed", false, false},
		{"before the erase, target on the same disk", true, true},
		{"after the erase, target on the same disk", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) { fullStoreDisk(t, tc.before, tc.targetThere) })
	}
}

func fullStoreDisk(t *testing.T, before, targetThere bool) {
	dir := smallDisk(t, "4m")
	ctx := context.Background()
	kr, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "lethe.db"), sqlite.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}

	shopDir := t.TempDir()
	if targetThere {
		shopDir = dir
	}
	shop, shopDB := sqliteShop(t, shopDir, false)
	filler := filepath.Join(dir, "filler")
	conn := &fillOnErase{Connector: shop.Conn.(*sqlconn.Connector), before: before, filled: make(chan struct{}), fill: func() { fill(t, filler) }}

	cfg := testConfig()
	cfg.JobTimeout = 2 * time.Second
	cfg.RescueStuckJobsAfter = 3 * time.Second
	p := start(t, st, cfg, Target{Name: "shop", Conn: conn})
	beforeRows := tableCounts(t, shopDB)
	id := submit(t, st, p, email)

	select {
	case <-conn.filled:
	case <-time.After(waitTimeout):
		t.Fatal("Erase (or EraseBatch) was never called")
	}
	// The disk stays full for a while: every write of the store fails.
	time.Sleep(2 * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	r := waitEnded(t, st, id)
	after := tableCounts(t, shopDB)
	t.Logf("request %s ended %s; rows before %v, after %v; tasks %+v", id, r.Status, beforeRows, after, r.Tasks)
	// The subject is user 1 with orders 10 and 11; user 2 and order 12
	// are someone else's.
	if r.Status == lethe.StatusCompleted && (after["users"] != 1 || after["orders"] != 1) {
		t.Fatalf("request completed with the subject's rows still there: %v", after)
	}
	task := taskOf(t, r, "shop")
	for _, it := range task.Report.Items {
		if it.Action != lethe.ActionDelete {
			continue
		}
		if want := beforeRows[it.Object] - after[it.Object]; it.Rows != want {
			t.Errorf("%s delete rows = %d, want %d: the rows the table lost", it.Object, it.Rows, want)
		}
	}
}

// waitEnded waits for the request to end, whichever way.
func waitEnded(t *testing.T, st store.Store, id string) *lethe.Request {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
		if err != nil {
			t.Fatalf("get request: %v", err)
		}
		if r.Status.Terminal() {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still %s/%s after %s; tasks %+v", id, r.Status, r.Stage, waitTimeout, r.Tasks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNoIdentitiesNeverCompletes: a request whose identities are gone
// while it is open (dropped by a partial write, say) must not complete:
// every target finds nothing for nobody, so erase and verify would pass
// with the subject's rows all there.
func TestNoIdentitiesNeverCompletes(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newMemTarget()
		target.put(email, 2)
		p := build(t, st, testConfig(), Target{"shop", target})
		id := submit(t, st, p, email)
		execSQL(t, st, `UPDATE request_identities SET value_sealed = NULL`, `UPDATE request_identities SET value_sealed = NULL`)
		startBuilt(t, p)
		r := waitDone(t, st, id, lethe.StatusFailed)
		if task := taskOf(t, r, "shop"); task.State != lethe.TaskFailed || task.LastError != errNoIdentities {
			t.Errorf("task = %+v, want failed: %s", task, errNoIdentities)
		}
		if n := target.count("erase"); n != 0 {
			t.Errorf("Erase calls = %d, want 0", n)
		}
		if n := target.held(email); n != 2 {
			t.Errorf("rows held = %d, want 2 (nothing erased)", n)
		}
	})
}
