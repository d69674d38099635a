package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unwritableStore is a directory for a SQLite store that the test can make
// unwritable and writable again: a small tmpfs filled to the last byte
// when the test runs as root (a full disk, the real failure), otherwise a
// directory whose write permission is taken away (a read-only store).
type unwritableStore struct {
	dir    string
	block  func(t *testing.T)
	unlock func(t *testing.T)
}

func newUnwritableStore(t *testing.T) unwritableStore {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the store is made read-only, not full")
		return unwritableStore{
			dir:    dir,
			block:  func(t *testing.T) { chmod(t, dir, 0o500) },
			unlock: func(t *testing.T) { chmod(t, dir, 0o700) },
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs as root: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	filler := filepath.Join(dir, "filler")
	return unwritableStore{
		dir: dir,
		block: func(t *testing.T) {
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunk := make([]byte, 64<<10)
			for {
				if _, err := f.Write(chunk); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("fill the tmpfs: %v", err)
					}
					break
				}
			}
			// What a 64 KiB chunk left over, byte by byte.
			for {
				if _, err := f.Write(chunk[:1]); err != nil {
					break
				}
			}
		},
		unlock: func(t *testing.T) {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestReadinessFollowsStoreWrites: while the store cannot write (a full
// disk, or a read-only one), /readyz fails, though the database still
// answers reads; requests fail without flooding the log (the same error is
// written once per interval); when space comes back /readyz recovers by
// itself and requests are taken and completed again.
func TestReadinessFollowsStoreWrites(t *testing.T) {
	t.Parallel()
	store := newUnwritableStore(t)
	b := newBackend(t, "sqlite")
	shop := b.newTarget(t, "shop")
	run(t, shop.db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`INSERT INTO users (id, email) VALUES (1, 'ready1@example.com'), (2, 'ready2@example.com'), (3, 'bystander@example.com')`,
	)
	b.storeDB = filepath.Join(store.dir, "lethe.db")
	srv := newServer(t, b.config([]target{shop}, map[string]string{
		"shop": "      - {name: users, identities: {email: email}, action: delete}\n",
	}), b.secretKey)
	srv.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if id, err := srv.submit(ctx, "ready1@example.com", "ready-1"); err != nil {
		t.Fatal(err)
	} else if v := waitRequest(t, srv, id, 30*time.Second); v.Status != "completed" {
		t.Fatalf("request before the outage: %s", v.Status)
	}

	ready := func() int {
		resp, err := http.Get(srv.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	store.block(t)
	logBefore := logSize(t, srv)
	waitFor(t, 15*time.Second, "/readyz to fail while the store cannot write", func() (bool, string) {
		code := ready()
		return code == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d", code)
	})
	// Requests fail (and report it) while the store is unwritable.
	failed := 0
	for i := range 100 {
		var v requestView
		code, err := srv.do(ctx, http.MethodPost, "/v1/deletion-requests", nil,
			map[string]any{"identities": []map[string]string{{"type": "email", "value": fmt.Sprintf("outage%d@example.com", i)}}}, &v)
		if err != nil {
			t.Fatal(err)
		}
		if code >= 500 {
			failed++
		}
	}
	for range 5 {
		ready()
	}
	logged := readLogFrom(t, srv, logBefore)
	errorLines := strings.Count(logged, `"level":"ERROR"`)
	t.Logf("during the outage: %d of 100 submissions failed, %d ERROR lines", failed, errorLines)
	if failed == 0 {
		t.Error("every submission succeeded while the store could not write; the outage proves nothing")
	}
	if errorLines > 10 {
		t.Errorf("%d ERROR lines for %d failed requests: the log floods\n%s", errorLines, failed, logged)
	}

	store.unlock(t)
	waitFor(t, 15*time.Second, "/readyz to recover", func() (bool, string) {
		code := ready()
		return code == http.StatusOK, fmt.Sprintf("/readyz %d", code)
	})
	id, err := srv.submit(ctx, "ready2@example.com", "ready-2")
	if err != nil {
		t.Fatal(err)
	}
	if v := waitRequest(t, srv, id, 60*time.Second); v.Status != "completed" {
		t.Fatalf("request after the outage: %s", v.Status)
	}
	if n := count(t, shop.db, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("%d users left, want the bystander only", n)
	}
}

func logSize(t *testing.T, s *server) int64 {
	t.Helper()
	fi, err := os.Stat(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func readLogFrom(t *testing.T, s *server, off int64) string {
	t.Helper()
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[off:])
}
