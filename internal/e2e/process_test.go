package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Helpers shared by the multi-process tests (every-target, shared rate
// limit, graceful shutdown): the lethe CLI, SIGTERM, and raw HTTP calls
// with credentials other than the harness's admin token.

// cli runs the lethe binary with args (and the environment plus extraEnv)
// and returns its standard output; a non-zero exit fails the test.
func cli(t *testing.T, extraEnv []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lethe %v: %v\nstdout: %s\nstderr: %s", args[0], err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// createdClient is the JSON `lethe clients create` prints.
type createdClient struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	APIKey       string `json:"api_key"`
	Secret       string `json:"shared_secret"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// createClient runs `lethe clients create --db db` with the given extra
// flags (e.g. --api-key K) and returns the printed credentials.
func createClient(t *testing.T, db, secretKey, name string, flags ...string) createdClient {
	t.Helper()
	var env []string
	if secretKey != "" {
		env = append(env, "LETHE_SECRET_KEY="+secretKey)
	}
	out := cli(t, env, append([]string{"clients", "create", "--db", db, "--log-level", "warn", "--name", name}, flags...)...)
	var c createdClient
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("lethe clients create printed %q: %v", out, err)
	}
	return c
}

// terminate sends SIGTERM and waits up to max for the process to exit. It
// returns the exit code and how long the exit took; a process still
// running after max is killed, fails the test and returns -1. It may run
// on a goroutine of its own (it never calls Fatal).
func (s *server) terminate(max time.Duration) (int, time.Duration) {
	s.t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(max):
		s.kill()
		s.t.Errorf("lethe serve still running %s after SIGTERM; killed", max)
		return -1, time.Since(start)
	}
	took := time.Since(start)
	code := s.cmd.ProcessState.ExitCode()
	s.cmd = nil
	return code, took
}

// reply is an HTTP answer read whole.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

// call makes one HTTP request with a fresh connection (no keep-alive, so a
// call after a shutdown really dials) and reads the whole answer.
func call(ctx context.Context, method, url string, hdr http.Header, body []byte) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}, err
}

// mustCall is call that fails the test on a network error and on a
// status other than want, and decodes a JSON answer into out (if not nil).
func mustCall(t *testing.T, method, url string, hdr http.Header, body []byte, want int, out any) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := call(ctx, method, url, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, r.code, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, r.body, err)
		}
	}
	return r
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": []string{"Bearer " + token}}
}

// s2sHeaders are the s2s profile's credentials for body: the API key and
// the lower-case hex HMAC-SHA256 of the exact bytes under the secret.
func s2sHeaders(apiKey, secret string, body []byte) http.Header {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return http.Header{
		"X-Api-Key":     []string{apiKey},
		"Authorization": []string{hex.EncodeToString(m.Sum(nil))},
	}
}

// waitRequest polls the native API as the admin until request id ends
// (completed, failed or canceled) and returns it.
func waitRequest(t *testing.T, s *server, id string, d time.Duration) requestView {
	t.Helper()
	var v requestView
	waitFor(t, d, fmt.Sprintf("request %s to end", id), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v = requestView{}
		code, err := s.do(ctx, http.MethodGet, "/v1/deletion-requests/"+id, nil, nil, &v)
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("GET: %d, %v", code, err)
		}
		switch v.Status {
		case "completed", "failed", "canceled", "denied", "held": // held: waits for an operator
			return true, v.Status
		}
		return false, fmt.Sprintf("status %s, tasks %+v", v.Status, v.Tasks)
	})
	return v
}
