package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts of the slow-client test, configured short so the test takes
// seconds; production defaults are 5s and 30s.
const (
	slowHeaderTimeout = time.Second
	slowReadTimeout   = 3 * time.Second
	// slack covers scheduling on a loaded two-core CI machine.
	slack = 3 * time.Second
)

// TestSlowClientsDoNotStarveOthers opens 25 slowloris connections
// (headers trickled), 20 endless slow bodies and 5 fast oversized bodies,
// checks that a normal request is still answered promptly while they
// hang, and that each is cut after its timeout or limit.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "sqlite")
	yaml := strings.Replace(b.config(nil, nil), "rate_limits:\n",
		fmt.Sprintf("http:\n  read_header_timeout: %s\n  read_timeout: %s\nrate_limits:\n", slowHeaderTimeout, slowReadTimeout), 1)
	srv := newServer(t, yaml, b.secretKey)
	srv.start()
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}

	type cut struct {
		kind  string
		after time.Duration
	}
	cuts := make(chan cut, 50)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// slow opens a connection, sends head, then calls drip every 200ms
	// until the server closes it, and reports how long that took.
	slow := func(kind, head string, drip func(net.Conn) error) {
		wg.Go(func() {
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			start := time.Now()
			if _, err := c.Write([]byte(head)); err != nil {
				t.Error(err)
				return
			}
			closed := make(chan struct{})
			go func() {
				// The server's answer (if any) and then EOF or a reset.
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadByte(); err != nil {
						close(closed)
						return
					}
				}
			}()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-closed:
					cuts <- cut{kind, time.Since(start)}
					return
				case <-ctx.Done():
					return
				case <-tick.C:
					if err := drip(c); err != nil {
						<-closed
						cuts <- cut{kind, time.Since(start)}
						return
					}
				}
			}
		})
	}
	auth := "Authorization: Bearer " + adminToken + "\r\n"
	for range 25 {
		slow("slowloris", "POST /v1/deletion-requests HTTP/1.1\r\nHost: lethe\r\n", func(c net.Conn) error {
			_, err := c.Write([]byte("X-Slow: 1\r\n"))
			return err
		})
	}
	for range 20 {
		slow("endless slow body", "POST /v1/deletion-requests HTTP/1.1\r\nHost: lethe\r\n"+auth+
			"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{\"identities\": [", func(c net.Conn) error {
			_, err := c.Write([]byte(" "))
			return err
		})
	}
	chunk := strings.Repeat(" ", 64<<10)
	for range 5 {
		slow("oversized body", "POST /v1/deletion-requests HTTP/1.1\r\nHost: lethe\r\n"+auth+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", func(c net.Conn) error {
			for range 16 { // 1 MiB per tick, far past max_body_bytes
				if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
					return err
				}
			}
			return nil
		})
	}

	// While they hang, a normal client is served at once.
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		start := time.Now()
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		id, err := srv.submit(rctx, fmt.Sprintf("normal%d@example.com", i), fmt.Sprintf("normal-%d", i))
		rcancel()
		if err != nil {
			t.Fatalf("normal request while 50 slow clients hang: %v", err)
		}
		// The slow bodies hang until slowReadTimeout: a request answered
		// before then was served beside them, not after they were cut. (A
		// causal bound rather than a speed one, so a loaded machine does
		// not fail it.)
		if d := time.Since(start); d >= slowReadTimeout {
			t.Errorf("normal request %s took %s while slow clients hang, want under %s", id, d, slowReadTimeout)
		}
	}

	// Every slow client is cut within its bound.
	limits := map[string]time.Duration{
		"slowloris":         slowHeaderTimeout + slack,
		"endless slow body": slowReadTimeout + slack,
		"oversized body":    slack,
	}
	worst := map[string]time.Duration{}
	timeout := time.After(slowReadTimeout + 2*slack)
	for range 50 {
		select {
		case c := <-cuts:
			worst[c.kind] = max(worst[c.kind], c.after)
		case <-timeout:
			t.Fatalf("slow clients still connected after %s (worst cut so far: %v)", slowReadTimeout+2*slack, worst)
		}
	}
	for kind, d := range worst {
		if d > limits[kind] {
			t.Errorf("%s cut after %s, want within %s", kind, d, limits[kind])
		}
	}
	t.Logf("slowest cut per kind: %v", worst)
	cancel()
	wg.Wait()
}
