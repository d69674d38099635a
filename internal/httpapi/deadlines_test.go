package httpapi

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestListDeadlineFilters(t *testing.T) {
	t.Parallel()
	// The server's clock is 31 days ahead: every GDPR request (due in 30)
	// is overdue to it.
	later := time.Now().Add(31 * 24 * time.Hour)
	e := newEnv(t, func(o *Options) { o.Now = func() time.Time { return later } })
	var ids []string
	for _, email := range []string{"due1@example.com", "due2@example.com", "due3@example.com"} {
		ids = append(ids, e.create(t, adminTok, email, nil).view(t).ID)
	}
	if res := e.do(t, call{method: "POST", path: "/v1/deletion-requests/" + ids[0] + "/cancel", token: adminTok}); res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}

	type page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
		NextCursor string `json:"next_cursor"`
	}
	list := func(query string) (page, answer) {
		t.Helper()
		res := e.do(t, call{method: "GET", path: "/v1/deletion-requests?" + query, token: adminTok})
		var p page
		if res.status == http.StatusOK {
			res.decode(t, &p)
		}
		return p, res
	}

	// overdue=true: the two open requests, one page at a time.
	p1, _ := list("overdue=true&limit=1")
	if len(p1.Data) != 1 || p1.NextCursor == "" {
		t.Fatalf("first overdue page: %+v", p1)
	}
	p2, _ := list("overdue=true&limit=1&cursor=" + p1.NextCursor)
	if len(p2.Data) != 1 || p2.NextCursor != "" {
		t.Fatalf("second overdue page: %+v", p2)
	}
	got := map[string]bool{p1.Data[0].ID: true, p2.Data[0].ID: true}
	if !got[ids[1]] || !got[ids[2]] {
		t.Errorf("overdue = %v, want %v (the canceled one left out)", got, ids[1:])
	}
	// A cursor is bound to its filters.
	if _, res := list("limit=1&cursor=" + p1.NextCursor); res.status != http.StatusBadRequest {
		t.Errorf("overdue cursor without overdue=true: %d, want 400", res.status)
	}

	// due_before: all three are due in 30 days, so none before 29 days
	// from now and all before 31; the canceled one included.
	if p, _ := list("due_before=" + url.QueryEscape(time.Now().Add(29*24*time.Hour).UTC().Format(time.RFC3339))); len(p.Data) != 0 {
		t.Errorf("due_before in 29 days: %d requests, want 0", len(p.Data))
	}
	if p, _ := list("due_before=" + url.QueryEscape(later.UTC().Format(time.RFC3339))); len(p.Data) != 3 {
		t.Errorf("due_before in 31 days: %d requests, want 3", len(p.Data))
	}
	for _, q := range []string{"overdue=yes", "due_before=tomorrow", "overdue=true&overdue=true"} {
		if _, res := list(q); res.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, res.status)
		}
	}
}
