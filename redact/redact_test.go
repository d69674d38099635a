package redact_test

import (
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/redact"
)

const X = redact.Placeholder

var (
	email   = lethe.Identity{Type: lethe.IdentityEmail, Value: "alice+tag@example.com"}
	ukPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+447700900123"}
	usPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+14155550123"}
	shortID = lethe.Identity{Type: lethe.IdentityUserID, Value: "3"}
	nameID  = lethe.Identity{Type: lethe.IdentityUserID, Value: "ada"}
)

func TestString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ids  []lethe.Identity
		in   string
		want string
	}{
		// Emails in every form.
		{"email as given", []lethe.Identity{email}, "no row for alice+tag@example.com", "no row for " + X},
		{"email upper-cased", []lethe.Identity{email}, "no row for ALICE+TAG@EXAMPLE.COM!", "no row for " + X + "!"},
		{"email query-escaped", []lethe.Identity{email}, "GET /u?e=alice%2Btag%40example.com&x=1", "GET /u?e=" + X + "&x=1"},
		{"email lower-case hex", []lethe.Identity{email}, "e=alice%2btag%40example.com", "e=" + X},
		{"email path-escaped", []lethe.Identity{email}, "GET /users/alice+tag@example.com/orders", "GET /users/" + X + "/orders"},
		{"email plus decoded to space", []lethe.Identity{email}, "user alice tag@example.com unknown", "user " + X + " unknown"},
		{"email doubly escaped", []lethe.Identity{email}, "next=%2Fu%3Fe%3Dalice%252Btag%2540example.com", "next=%2Fu%3Fe%3D" + X},
		{"email JSON-escaped", []lethe.Identity{email}, `{"email":"alice+tag\u0040example.com"}`, `{"email":"` + X + `"}`},
		{"email HTML entity", []lethe.Identity{email}, "<td>alice+tag&#64;example.com</td>", "<td>" + X + "</td>"},
		{"email in quotes", []lethe.Identity{email}, `Key (email)=(alice+tag@example.com) already exists`, `Key (email)=(` + X + `) already exists`},
		{"email escaped quote before", []lethe.Identity{email}, `q=%22alice%2Btag%40example.com%22`, `q=%22` + X + `%22`},
		// Other people's emails, from a remote system.
		{"someone else's email", nil, "duplicate of bob.smith@example.org (account 7)", "duplicate of " + X + " (account 7)"},
		{"someone else's email encoded", nil, "to=bob%40example.org", "to=" + X},
		{"no email without local part", nil, "see @alice on chat", "see @alice on chat"},
		// Phones in every form.
		{"phone E.164", []lethe.Identity{ukPhone}, "sms to +447700900123 failed", "sms to " + X + " failed"},
		{"phone national", []lethe.Identity{ukPhone}, "sms to 07700 900123 failed", "sms to " + X + " failed"},
		{"phone formatted international", []lethe.Identity{ukPhone}, "sms to +44 7700 900123 failed", "sms to " + X + " failed"},
		{"phone with (0)", []lethe.Identity{ukPhone}, "call +44 (0)7700 900123", "call " + X},
		{"phone 00 prefix", []lethe.Identity{ukPhone}, "call 00447700900123", "call " + X},
		{"phone query-escaped", []lethe.Identity{ukPhone}, "?p=%2B44%207700%20900123", "?p=" + X},
		{"phone plus as space", []lethe.Identity{ukPhone}, "?p=+44+7700+900123", "?p=" + X},
		{"US phone parenthesised", []lethe.Identity{usPhone}, "call (415) 555-0123 now", "call " + X + " now"},
		{"US phone dashed", []lethe.Identity{usPhone}, "call 415-555-0123.", "call " + X + "."},
		{"US phone dotted", []lethe.Identity{usPhone}, "call 415.555.0123", "call " + X},
		{"US phone bare", []lethe.Identity{usPhone}, "phone=4155550123", "phone=" + X},
		{"US phone with 1", []lethe.Identity{usPhone}, "call 1-415-555-0123", "call " + X},
		{"someone else's phone", nil, "forwarded to 030 1234567", "forwarded to " + X},
		{"someone else's phone international", nil, "forwarded to +49 30 1234567", "forwarded to " + X},
		// Numbers that are no phone, and short ids inside tokens.
		{"SQLSTATE kept", []lethe.Identity{shortID}, "ERROR: update or delete on table \"users\" violates foreign key constraint (SQLSTATE 23503)", "ERROR: update or delete on table \"users\" violates foreign key constraint (SQLSTATE 23503)"},
		{"short id as token", []lethe.Identity{shortID}, "Key (user_id)=(3) is still referenced", "Key (user_id)=(" + X + ") is still referenced"},
		{"short id at the ends", []lethe.Identity{shortID}, "3 rows for 3", X + " rows for " + X},
		{"short id in decimal", []lethe.Identity{shortID}, "took 1.3s, v3, 3.5, 1,3", "took 1.3s, v3, 3.5, 1,3"},
		{"short id in address", []lethe.Identity{shortID}, "dial tcp 10.0.0.3:5432: refused", "dial tcp 10.0.0.3:5432: refused"},
		{"short id in path", []lethe.Identity{shortID}, "GET /users/3/orders", "GET /users/" + X + "/orders"},
		{"short id in identifier", []lethe.Identity{shortID}, "user_3 id3 3x", "user_3 id3 3x"},
		{"name id not in word", []lethe.Identity{nameID}, "adaptive ada Ada_x ADA.", "adaptive " + X + " Ada_x " + X + "."},
		{"date and address kept", nil, "at 2026-11-28 18:36:05 from 127.0.0.1:5432, v1.2.3, 28.11.2026", "at 2026-11-28 18:36:05 from 127.0.0.1:5432, v1.2.3, 28.11.2026"},
		{"uuid kept", nil, "request 01943a7c-8b2e-7d4f-9a1b-2c3d4e5f6a7b", "request 01943a7c-8b2e-7d4f-9a1b-2c3d4e5f6a7b"},
		{"digits before a word", nil, "call 4155550123 2nd time", "call " + X + " 2nd time"},
		{"entity before value", []lethe.Identity{nameID}, "&#65;ada &#34;ada&#34; \\nada", "&#65;" + X + " &#34;" + X + "&#34; \\n" + X},
		{"hex kept", nil, "0x12345678 id_1234567 1234567ms", "0x12345678 id_1234567 1234567ms"},
		{"dotted phone", nil, "call 01.23.45.67.89 or 12-34-5678", "call " + X + " or " + X},
		{"US date kept", nil, "since 11/28/2026", "since 11/28/2026"},
		{"few digits kept", nil, "answered 503 after 120 s", "answered 503 after 120 s"},
		// Text around it.
		{"control characters", nil, "line one\nline\ttwo\x00", "line one line two "},
		{"nothing to remove", []lethe.Identity{email, shortID}, "timeout", "timeout"},
		{"overlapping forms", []lethe.Identity{email, {Type: lethe.IdentityUserID, Value: "alice"}}, "alice+tag@example.com", X},
		{"adjacent values", []lethe.Identity{shortID, nameID}, "3 ada 3", X + " " + X + " " + X},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := redact.String(tc.in, tc.ids); got != tc.want {
				t.Errorf("String(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestCut: long text is cut after scrubbing, never leaving a value (or half
// a placeholder) behind.
func TestCut(t *testing.T) {
	t.Parallel()
	ids := []lethe.Identity{email}
	for pad := redact.MaxLen - 40; pad <= redact.MaxLen+5; pad++ {
		in := strings.Repeat("x ", pad/2) + strings.Repeat(" ", pad%2) + "alice+tag@example.com and more text after it"
		got := redact.String(in, ids)
		if len(got) > redact.MaxLen+len("...") {
			t.Fatalf("pad %d: %d bytes", pad, len(got))
		}
		if strings.Contains(got, "alice") || strings.Contains(got, "tag@") {
			t.Fatalf("pad %d: value left in %q", pad, got[len(got)-60:])
		}
		if i := strings.LastIndexByte(got, '<'); i >= 0 && !strings.HasPrefix(got[i:], X) {
			t.Fatalf("pad %d: half a placeholder in %q", pad, got[i:])
		}
	}
	// A cut inside "adam" must not leave "ada", which would read as the id.
	for pad := redact.MaxLen - 6; pad <= redact.MaxLen; pad++ {
		got := redact.String(strings.Repeat(" ", pad)+"adam "+strings.Repeat("y ", redact.MaxLen), []lethe.Identity{nameID})
		if body := strings.TrimSuffix(got, "..."); strings.HasSuffix(body, "ad") || strings.HasSuffix(body, "ada") {
			t.Fatalf("pad %d: cut inside a token: %q", pad, got[len(got)-10:])
		}
	}
	long := strings.Repeat("é", 10*redact.MaxLen)
	got := redact.String(long, nil)
	if len(got) > redact.MaxLen+3 || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, "éé") {
		t.Errorf("long text: %d bytes, %q...", len(got), got[:10])
	}
	if got := redact.String("\xffab\xfe", nil); got != "?ab?" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

// TestRedactorReuse: one Redactor serves many texts and goroutines.
func TestRedactorReuse(t *testing.T) {
	t.Parallel()
	r := redact.New([]lethe.Identity{ukPhone, shortID})
	done := make(chan string)
	for range 4 {
		go func() { done <- r.String("sms 07700 900123 for user 3") }()
	}
	for range 4 {
		if got := <-done; got != "sms "+X+" for user "+X {
			t.Errorf("got %q", got)
		}
	}
}
