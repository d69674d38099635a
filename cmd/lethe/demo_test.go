package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// buildLethe builds this binary into dir: the walkthrough calls `lethe`.
func buildLethe(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(dir, "lethe"), ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is the test's environment without LETHE_ variables (which
// would reconfigure the server) and with bin first on PATH.
func cleanEnv(bin string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LETHE_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

type demoServer struct {
	cmd    *exec.Cmd
	stdout *testdb.SyncBuffer
	stderr *testdb.SyncBuffer
}

// startDemo runs `lethe serve --demo` in the working directory cwd, as the
// README does, and waits until it serves.
func startDemo(t *testing.T, bin, cwd, addr string) *demoServer {
	t.Helper()
	s := &demoServer{stdout: &testdb.SyncBuffer{}, stderr: &testdb.SyncBuffer{}}
	s.cmd = exec.Command(filepath.Join(bin, "lethe"), "serve", "--demo", "--listen", addr)
	s.cmd.Dir = cwd
	s.cmd.Env = cleanEnv(bin)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.stderr.String(), `"lethe serving"`) {
		if time.Now().After(deadline) || s.cmd.ProcessState != nil {
			t.Fatalf("server did not start:\n%s\n%s", s.stdout, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *demoServer) stop(t *testing.T) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exited: %v\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
		t.Error("server did not stop within 30s of SIGTERM")
	}
}

// script returns the printed walkthrough from its exports to the end.
func (s *demoServer) script(t *testing.T) string {
	t.Helper()
	out := s.stdout.String()
	i := strings.Index(out, "export LETHE_SERVER=")
	if i < 0 {
		t.Fatalf("no walkthrough printed:\n%s", out)
	}
	return out[i:]
}

func shopCount(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestDemoWalkthrough runs `lethe serve --demo` in a temporary directory,
// then the printed walkthrough itself with bash and curl: the native,
// s2s and connect requests all complete, their customers' rows are gone,
// everybody else's are untouched and invoices are retained. A second
// start reuses the shop, token and client and offers the next customers.
func TestDemoWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; the walkthrough needs it", tool)
		}
	}
	bin, cwd := t.TempDir(), t.TempDir()
	dir := filepath.Join(cwd, "lethe-demo") // everything the demo makes
	buildLethe(t, bin)
	addr := freeAddr(t)
	srv := startDemo(t, bin, cwd, addr)
	script := srv.script(t)
	readmeStepsPrinted(t, script)

	// Everything the demo wrote (databases with their WAL files, the key,
	// the config and the state with its tokens) is its owner's only.
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fi, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
			t.Errorf("demo file %s has mode %o, want 600", f.Name(), fi.Mode().Perm())
		}
	}
	if len(files) < 3 {
		t.Errorf("demo wrote %d files into its folder, want its databases, config and state", len(files))
	}

	people := demo.People(demo.DefaultPeople)
	if !strings.Contains(script, people[0].Email) || !strings.Contains(script, "customer 1 by email") {
		t.Fatalf("the walkthrough does not erase customer 1:\n%s", script)
	}
	shop, err := sql.Open("sqlite", "file:"+filepath.Join(dir, demoShopFile)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	invoices := shopCount(t, shop, `SELECT COUNT(*) FROM invoices`)
	orders := shopCount(t, shop, `SELECT COUNT(*) FROM orders`)
	if n := shopCount(t, shop, `SELECT COUNT(*) FROM users`); n != demo.DefaultPeople {
		t.Fatalf("%d users before the walkthrough", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	run.Dir = cwd
	run.Env = cleanEnv(bin)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s\nserver log:\n%s", err, out, srv.stderr)
	}
	text := string(out)
	for _, want := range []string{`"dry_run":true`, `"status":"completed"`, `{"success": true}`, `{ "id": "`, "ok: receipt of request"} {
		if !strings.Contains(text, want) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, text)
		}
	}
	// The plan after erasing: no users row left, the invoices retained.
	if !regexp.MustCompile(`(?m)^demo-shop\s+users\s+delete\s+0\b`).MatchString(text) ||
		!regexp.MustCompile(`(?m)^demo-shop\s+invoices\s+retain\s+[1-9]`).MatchString(text) {
		t.Errorf("lethe plan after the erase:\n%s", text)
	}

	// The s2s and connect requests were only submitted: wait for them.
	token := regexp.MustCompile(`LETHE_TOKEN='([0-9a-f]+)'`).FindStringSubmatch(script)[1]
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/deletion-requests", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Data []struct{ Status string } `json:"data"`
		}
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range page.Data {
			if r.Status == "completed" {
				done++
			}
		}
		if len(page.Data) == 3 && done == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests did not complete: %+v", page.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, p := range people[:3] {
		if n := shopCount(t, shop, `SELECT COUNT(*) FROM users WHERE id = ?`, p.ID); n != 0 {
			t.Errorf("customer %d still has a users row", p.ID)
		}
		if n := shopCount(t, shop, `SELECT COUNT(*) FROM addresses WHERE user_id = ?`, p.ID) +
			shopCount(t, shop, `SELECT COUNT(*) FROM orders WHERE user_id = ? OR email = ?`, p.ID, p.Email) +
			shopCount(t, shop, `SELECT COUNT(*) FROM support_tickets WHERE email = ?`, p.Email); n != 0 {
			t.Errorf("customer %d still has %d linked rows", p.ID, n)
		}
	}
	if n := shopCount(t, shop, `SELECT COUNT(*) FROM users`); n != demo.DefaultPeople-3 {
		t.Errorf("%d users left, want %d", n, demo.DefaultPeople-3)
	}
	if n := shopCount(t, shop, `SELECT COUNT(*) FROM invoices`); n != invoices {
		t.Errorf("%d invoices left of %d: retained rows were changed", n, invoices)
	}
	if n := shopCount(t, shop, `SELECT COUNT(*) FROM orders`); n != orders {
		t.Errorf("%d orders left of %d: pseudonymised rows must stay", n, orders)
	}
	if n := shopCount(t, shop, `SELECT COUNT(*) FROM addresses WHERE user_id = ?`, people[3].ID); n == 0 {
		t.Error("customer 4's addresses were erased too")
	}

	// A second start reuses everything and offers customer 4.
	srv.stop(t)
	again := startDemo(t, bin, cwd, addr)
	second := again.stdout.String()
	if !strings.Contains(second, "Reusing the demo shop") || strings.Contains(second, "Created the demo client") {
		t.Errorf("second start did not reuse the demo:\n%s", second)
	}
	if !strings.Contains(second, "LETHE_TOKEN='"+token+"'") || !strings.Contains(second, "customer 4 by email") {
		t.Errorf("second start's walkthrough:\n%s", second)
	}

	// Two starts and the walkthrough left nothing in the working
	// directory but the demo's folder.
	again.stop(t)
	entries, err := os.ReadDir(cwd)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "lethe-demo" {
			t.Errorf("the demo left %s in the working directory, outside ./lethe-demo/", e.Name())
		}
	}
}

// readmeStepsPrinted checks that every step of the README's walkthrough is
// in the script the demo prints, in the same order: each numbered title,
// and each command up to where the README shortens it (a "…" or a quoted
// value that differs on every machine).
func readmeStepsPrinted(t *testing.T, script string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## A five-minute walkthrough")
	if start < 0 {
		t.Fatal("README has no walkthrough section")
	}
	block := readme[start:]
	if i := strings.Index(block, "```sh\n"); i >= 0 {
		block = block[i+len("```sh\n"):]
	}
	block = block[:strings.Index(block, "```")]
	printed := strings.Split(script, "\n")
	at, steps := 0, 0
	for _, line := range strings.Split(block, "\n") {
		var want string
		switch {
		case regexp.MustCompile(`^# [0-9]+\. `).MatchString(line), strings.HasPrefix(line, "# Every request"):
			want = line
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, " "):
			continue // sample output, or a README line wrapped for width
		default:
			want = strings.TrimRight(strings.TrimSuffix(strings.TrimSpace(line), "\\"), " ")
			if i := strings.IndexAny(want, "…'"); i >= 0 {
				want = strings.TrimRight(want[:i], " ")
			}
		}
		steps++
		found := false
		for ; at < len(printed); at++ {
			if strings.HasPrefix(printed[at], want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the README's walkthrough step %q is not in the printed script (in order):\n%s", want, script)
			return
		}
	}
	if steps < 10 {
		t.Errorf("found only %d steps in the README's walkthrough", steps)
	}
}
