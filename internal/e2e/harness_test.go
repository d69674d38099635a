package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// buildDir holds the binary built for this run; TestMain removes it.
var (
	buildDir  string
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lethe-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds cmd/lethe once per test run, on first use, so a run whose
// tests are all skipped pays nothing.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildPath = filepath.Join(buildDir, "lethe")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "./cmd/lethe")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/lethe: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// adminToken is the admin bearer token of every server the tests start.
const adminToken = "e2e-admin-token-0123456789"

// server is one lethe serve process.
type server struct {
	t       *testing.T
	bin     string
	config  string // path of the config file
	env     []string
	url     string // http://127.0.0.1:port
	logPath string

	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// newServer prepares a server for the config in yaml (which must not set
// listen: the harness picks a free port). secretKey is LETHE_SECRET_KEY,
// required with PostgreSQL; empty keeps it in a file beside a SQLite db.
// storeURL finds the PostgreSQL store URL of a config.
var storeURL = regexp.MustCompile(`(?m)^db: "(postgres(?:ql)?://[^"]*)"`)

// capPool caps the store pool of every lethe a test starts: the test
// server is shared, and several processes at the default size (workers
// plus ten) would run it out of connections. The cap is the workers'
// concurrency (backend.config), so jobs never wait for a connection for
// long.
func capPool(yaml string) string {
	return storeURL.ReplaceAllStringFunc(yaml, func(m string) string {
		u := storeURL.FindStringSubmatch(m)[1]
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		return fmt.Sprintf("db: %q", u+sep+"pool_max_conns=6")
	})
}

// postgresSlot lets one test at a time work on PostgreSQL: a test runs up
// to three lethe processes, each with a store pool and a connection per
// running job to every PostgreSQL target, and the server is shared with
// other packages and other people (scripts/neighbour-check measures it).
// Tests on SQLite alone still run in parallel.
var postgresSlot = make(chan struct{}, 1)

// postgresTests are the tests holding postgresSlot.
var postgresTests sync.Map // *testing.T -> bool

// postgresDSN is testdb.PostgresDSN for a test that, from now on until
// its end (after every other cleanup), holds postgresSlot.
func postgresDSN(t *testing.T) string {
	t.Helper()
	if _, held := postgresTests.LoadOrStore(t, true); !held {
		postgresSlot <- struct{}{}
		t.Cleanup(func() {
			postgresTests.Delete(t)
			<-postgresSlot
		})
	}
	return testdb.PostgresDSN(t)
}

func newServer(t *testing.T, yaml, secretKey string) *server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lethe.yaml")
	if err := os.WriteFile(cfg, []byte(capPool(yaml)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := &server{
		t:       t,
		bin:     binary(t),
		config:  cfg,
		url:     "http://" + net.JoinHostPort("127.0.0.1", port),
		logPath: filepath.Join(dir, "lethe.log"),
	}
	s.env = append(os.Environ(),
		"LETHE_LISTEN=127.0.0.1:"+port,
		"LETHE_ADMIN_TOKEN="+adminToken,
	)
	if secretKey != "" {
		s.env = append(s.env, "LETHE_SECRET_KEY="+secretKey)
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			s.dumpLog()
		}
	})
	return s
}

// start runs lethe serve and waits until /readyz answers 200.
func (s *server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	s.runs++
	fmt.Fprintf(logf, "---- start %d ----\n", s.runs)
	cmd := exec.Command(s.bin, "serve", "--config", s.config, "--log-level", "warn")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(s.done)

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			s.dumpLog()
			s.t.Fatalf("lethe serve exited during start: %v", cmd.ProcessState)
		default:
		}
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.dumpLog()
			s.t.Fatalf("lethe serve not ready after 60s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL (no shutdown path runs: the process just ends, as in
// a power loss or an OOM kill) and waits for the process to be gone.
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

func (s *server) dumpLog() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	const max = 8000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	s.t.Logf("server log (tail):\n%s", b)
}

// do calls the native API as the admin; body is JSON-encoded when not nil.
// It returns the status and the answer; a network error is returned, not
// fatal, because the server may be down on purpose.
func (s *server) do(ctx context.Context, method, path string, hdr http.Header, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", strings.TrimSpace(string(b)), err)
		}
	}
	return resp.StatusCode, nil
}

// submitted is the part of the native API's request view the tests read.
type requestView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Tasks  []struct {
		Target   string `json:"target"`
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
		Report   struct {
			Items []struct {
				Object string `json:"object"`
				Action string `json:"action"`
				Rows   int64  `json:"rows"`
			} `json:"items"`
		} `json:"report"`
	} `json:"tasks"`
}

// submit posts a deletion request for email under an idempotency key,
// retrying through connection errors and 5xx until ctx ends: a client
// whose server died mid-call cannot know whether its request was taken,
// and the key makes the retry return the first answer if it was.
func (s *server) submit(ctx context.Context, email, key string) (string, error) {
	body := map[string]any{"identities": []map[string]string{{"type": "email", "value": email}}}
	hdr := http.Header{"Idempotency-Key": []string{key}}
	for {
		var v requestView
		code, err := s.do(ctx, http.MethodPost, "/v1/deletion-requests", hdr, body, &v)
		if err == nil && code < 300 && v.ID != "" {
			return v.ID, nil
		}
		if err == nil && code < 500 {
			return "", fmt.Errorf("submit: status %d", code)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("submit: %w (last: %d, %v)", ctx.Err(), code, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
