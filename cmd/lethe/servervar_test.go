package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// The walkthrough's variables are the CLI's own: LETHE_SERVER and
// LETHE_TOKEN, with LETHE_URL read for LETHE_SERVER when that is unset.
func TestServerVariableNames(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := map[string]string{} // server -> Authorization it was called with
	serve := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name] = r.Header.Get("Authorization")
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"data":[]}`))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	server, url := serve("server"), serve("url")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LETHE_SERVER": server.URL, "LETHE_TOKEN": "t1"}, "server"},
		{map[string]string{"LETHE_URL": url.URL, "LETHE_TOKEN": "t1"}, "url"},
		{map[string]string{"LETHE_SERVER": server.URL, "LETHE_URL": url.URL, "LETHE_TOKEN": "t1"}, "server"},
	} {
		mu.Lock()
		clear(hits)
		mu.Unlock()
		mustRunLethe(t, cliDB{env: tc.env}, nil, "requests", "list")
		mu.Lock()
		got := maps.Clone(hits)
		mu.Unlock()
		if len(got) != 1 || got[tc.want] != "Bearer t1" {
			t.Errorf("with %v: calls %v, want one to %s with the token", tc.env, got, tc.want)
		}
	}
}
