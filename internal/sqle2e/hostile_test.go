package sqle2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// Hostile values, each stored in one extra user's rows. The generated
// users stay, so every request must find its one person among 10,000.
var (
	cyrillicAlice = "\u0430lice@example.com" // Cyrillic а, looks like alice@
	quoteEmail    = "x'or'1'='1@example.com" // a valid address full of quotes
	quoteRef      = "x' OR '1'='1"
	dropRef       = `"; DROP TABLE users; --`
	cyrillicRef   = "cr\u0435f-1" // Cyrillic е: looks like user 1's cref-1
	// longRef is exactly lethe.MaxValueLen (256) bytes, multi-byte runes
	// included, so a column sized in characters holds it.
	longRef = strings.Repeat("\u00fc", 100) + strings.Repeat("r", 56)
	// longEmail is exactly lethe.MaxEmailLen (254) bytes.
	longEmail = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
)

// TestHostileIdentities submits injection attempts, look-alikes and values
// at the length limits through the native API. Invalid ones must get a 400
// and change nothing; valid ones must erase exactly their own subject.
// Look-alikes (a Cyrillic letter among Latin ones) are invalid: they name
// somebody else, so the users holding them stay untouched.
func TestHostileIdentities(t *testing.T) {
	t.Parallel()
	if len(longRef) != 256 || len(longEmail) != 254 {
		t.Fatalf("limits: ref %d bytes, email %d bytes", len(longRef), len(longEmail))
	}
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s := newShop(t, b, shopUsers)
		extra := []person{
			{ID: 20001, Email: cyrillicAlice, Phone: "+4930000001", CustomerRef: "ref-20001", Name: "hostile 20001", Guest: true},
			{ID: 20002, Email: "alice@example.com", Phone: "+4930000002", CustomerRef: "ref-20002", Name: "hostile 20002", Guest: true}, // stays
			{ID: 20003, Email: quoteEmail, Phone: "+4930000003", CustomerRef: "ref-20003", Name: "hostile 20003", Guest: true},
			{ID: 20004, Email: "quote@example.com", CustomerRef: quoteRef, Name: "hostile 20004", Guest: true},
			{ID: 20005, Email: "drop@example.com", CustomerRef: dropRef, Name: "hostile 20005", Guest: true},
			{ID: 20006, Email: "long@example.com", CustomerRef: longRef, Name: "hostile 20006", Guest: true},
			{ID: 20007, Email: longEmail, Name: "hostile 20007", Guest: true},
			{ID: 20008, Email: "lookalike@example.com", CustomerRef: cyrillicRef, Name: "hostile 20008", Guest: true},
		}
		for _, p := range extra {
			s.add(t, p)
		}
		in := startLethe(t, storeFor(b), s.mapYAML())
		before := s.dump(t)

		// Invalid: refused before anything is stored.
		over := strings.Repeat("9", 257)
		for _, tc := range []struct {
			name string
			ids  []identity
		}{
			{"quote as email", []identity{{"email", quoteRef}}},
			{"drop table as email", []identity{{"email", dropRef}}},
			{"email over the limit", []identity{{"email", "a" + longEmail}}},
			{"user_id over the limit", []identity{{"user_id", over}}},
			{"custom over the limit", []identity{{"x-customer_ref", "r" + longRef}}},
			{"NUL in user_id", []identity{{"user_id", "1\x00"}}},
			{"newline in custom", []identity{{"x-customer_ref", "cref-1\n OR 1=1"}}},
			{"injection as phone", []identity{{"phone", "+49 151 OR 1=1"}}},
			{"injection as type", []identity{{"x-customer_ref; DROP TABLE users", "1"}}},
			{"upper-case custom type", []identity{{"X-Customer_Ref", "cref-1"}}},
			{"blank value", []identity{{"user_id", "   "}}},
			{"no identities", nil},
			// One bad identity spoils the request: nothing of it runs.
			{"valid and invalid", []identity{{"user_id", "1"}, {"email", dropRef}}},
			{"look-alike email", []identity{{"email", cyrillicAlice}}},
			{"look-alike custom", []identity{{"x-customer_ref", cyrillicRef}}},
			{"zero-width space in email", []identity{{"email", "alice\u200b@example.com"}}},
			{"right-to-left override in custom", []identity{{"x-customer_ref", "cref-1\u202e"}}},
			{"lone surrogate in user_id", []identity{{"user_id", "1\ufffd"}}},
		} {
			status, body := in.call(t, "POST", "/v1/deletion-requests", map[string]any{"identities": tc.ids})
			if status != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400: %s", tc.name, status, body)
				continue
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
				t.Errorf("%s: not a native error body: %s", tc.name, body)
			}
			for _, id := range tc.ids {
				if len(id.Value) > 3 && strings.Contains(string(body), id.Value) {
					t.Errorf("%s: the error quotes the identity value: %s", tc.name, body)
				}
			}
		}
		status, body := in.call(t, "GET", "/v1/deletion-requests", nil)
		if status != http.StatusOK || !strings.Contains(string(body), `"data":[]`) {
			t.Errorf("after invalid submissions: requests listed (%d): %s", status, body)
		}
		checkErased(t, before, s.dump(t), nil)

		// Valid: each erases its one subject; the user_id injections
		// name nobody (users.id is an integer) and complete with nothing.
		subjects := map[int64]bool{20003: true, 20004: true, 20005: true, 20006: true, 20007: true}
		var reqs []string
		for _, ids := range [][]identity{
			{{"email", quoteEmail}},
			{{"x-customer_ref", quoteRef}},
			{{"x-customer_ref", dropRef}},
			{{"x-customer_ref", longRef}},
			{{"email", strings.ToUpper(longEmail)}},
			{{"user_id", quoteRef}},
			{{"user_id", "1 OR 1=1"}},
			{{"user_id", "2abc"}}, // MySQL would cast this to 2
			{{"user_id", over[:256]}},
			{{"x-customer_ref", "cref-1' --"}},
		} {
			reqs = append(reqs, in.submit(t, ids...))
		}
		for _, id := range reqs {
			if v := in.wait(t, id); v.Status != "completed" {
				t.Errorf("request %s ended %s: %+v", id, v.Status, v.Tasks)
			}
		}
		checkErased(t, before, s.dump(t), subjects)
	})
}
