package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// cliAdminToken is the admin token of the servers these tests start.
const cliAdminToken = "cli-test-admin-token-0123"

// cliDB is one test database for the CLI tests: a SQLite file or a fresh
// PostgreSQL schema, with the environment the commands need for it.
type cliDB struct {
	db  string
	env map[string]string
}

func newCLIDB(t *testing.T, dialect string) cliDB {
	t.Helper()
	env := map[string]string{"LETHE_ADMIN_TOKEN": cliAdminToken}
	switch dialect {
	case "sqlite":
		return cliDB{db: filepath.Join(t.TempDir(), "lethe.db"), env: env}
	case "postgres":
		dsn := testdb.PostgresDSN(t)
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		env["LETHE_SECRET_KEY"] = hex.EncodeToString(key)
		return cliDB{db: dsn, env: env}
	}
	t.Fatalf("unknown dialect %q", dialect)
	return cliDB{}
}

func (d cliDB) lookup(name string) (string, bool) {
	v, ok := d.env[name]
	return v, ok
}

// runLethe runs the lethe command line in this process, as a user would
// run the binary, and returns what it printed on stdout.
func runLethe(t *testing.T, d cliDB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd(&stdout, &stderr, d.lookup)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return stdout.String(), err
}

// mustRunLethe is runLethe for a command that must succeed; out, when not
// nil, receives its JSON output.
func mustRunLethe(t *testing.T, d cliDB, out any, args ...string) string {
	t.Helper()
	s, err := runLethe(t, d, args...)
	if err != nil {
		t.Fatalf("lethe %v: %v", args, err)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(s), out); err != nil {
			t.Fatalf("lethe %v printed %q: %v", args, s, err)
		}
	}
	return s
}

// startCLIServer runs `lethe serve` in this process on a free port until
// the test ends, and returns its base URL once /readyz answers.
func startCLIServer(t *testing.T, d cliDB, extra ...string) string {
	t.Helper()
	return startServe(t, d, "http", http.DefaultClient, extra...)
}

// startServe is startCLIServer for a given scheme, probing with client
// (one that trusts the certificate, for https).
func startServe(t *testing.T, d cliDB, scheme string, client *http.Client, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		cmd := newRootCmd(&bytes.Buffer{}, &stderr, d.lookup)
		cmd.SetArgs(append([]string{"serve", "--db", d.db, "--listen", addr, "--log-level", "error"}, extra...))
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("serve did not stop within a minute of its context ending")
		}
	})
	url := scheme + "://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("serve stopped during start: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := client.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready within 30s: %v", errors.Join(err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
