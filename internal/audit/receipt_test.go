package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testSigner(seed byte) *Signer {
	return NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
}

func testReceipt() *Receipt {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	r := &lethe.Request{
		ID: "0195f0a4-0000-7000-8000-000000000001", Regulation: lethe.GDPR, Status: lethe.StatusCompleted,
		Outcome:    lethe.OutcomeErased,
		ReceivedAt: t0, DueAt: t0.Add(30 * 24 * time.Hour), CompletedAt: t0.Add(time.Minute),
	}
	tasks := []lethe.Task{{Target: "shop", State: lethe.TaskDone, Attempts: 1, Report: lethe.Report{Items: []lethe.ReportItem{
		{Object: "users", Action: lethe.ActionDelete, Rows: 1},
		{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax law <§147 AO> \"10y\"\n", Until: t0.Add(10 * 365 * 24 * time.Hour)},
	}}}}
	ids := []store.IdentityHash{{Type: "email", Hash: strings.Repeat("ab", 32), Source: "given"}}
	events := []lethe.AuditEvent{{Hash: "h1"}, {Hash: "h2"}}
	return NewReceipt(r, tasks, ids, events)
}

func keysOf(s ...*Signer) map[string]ed25519.PublicKey {
	m := map[string]ed25519.PublicKey{}
	for _, x := range s {
		m[x.KeyID()] = x.Public()
	}
	return m
}

func TestReceiptSignVerify(t *testing.T) {
	s := testSigner(1)
	doc, digest, err := s.Sign(testReceipt())
	if err != nil {
		t.Fatal(err)
	}
	if read, err := Digest(doc); err != nil || read != digest {
		t.Fatalf("Sign's digest %s; read back from the document %s (%v)", digest, read, err)
	}
	rc, err := Verify(doc, keysOf(s))
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, doc)
	}
	if rc.Audit != (ChainHead{Events: 2, Head: "h2"}) || len(rc.Retained) != 1 || rc.Retained[0].Object != "invoices" || rc.Outcome != lethe.OutcomeErased {
		t.Errorf("receipt = %+v", rc)
	}
	// Re-indenting the document changes no value: it still verifies.
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(pretty.Bytes(), keysOf(s)); err != nil {
		t.Errorf("indented receipt: %v", err)
	}
	// Another key, an unknown key, and altered values are refused.
	if _, err := Verify(doc, keysOf(testSigner(2))); err == nil {
		t.Error("verified with an unknown key")
	}
	other := testSigner(2)
	forged := strings.Replace(string(doc), s.KeyID(), other.KeyID(), 1)
	if _, err := Verify([]byte(forged), keysOf(s, other)); err == nil {
		t.Error("verified under another key's id")
	}
	for _, tamper := range []struct{ from, to string }{
		{`"rows":1`, `"rows":0`},
		{`"status":"completed"`, `"status":"failed"`},
		{`"outcome":"erased"`, `"outcome":"no_match"`},
		{`"events":2`, `"events":1`},
		{`"version":"lethe.receipt.v1"`, `"version":"lethe.receipt.v1","extra":1`},
		{`"status":"completed"`, `"status":"completed","status":"completed"`},
	} {
		bad := strings.Replace(string(doc), tamper.from, tamper.to, 1)
		if bad == string(doc) {
			t.Fatalf("tamper %q not applied", tamper.from)
		}
		if _, err := Verify([]byte(bad), keysOf(s)); err == nil {
			t.Errorf("tampered receipt (%s -> %s) verified", tamper.from, tamper.to)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"b":1,"a":[true,null,"x"]}`, `{"a":[true,null,"x"],"b":1}`},
		{`{ "a" : "\u00e9\u2028<>&\"\\\n\u0001" }`, "{\"a\":\"é\u2028<>&\\\"\\\\\\n\\u0001\"}"},
		// UTF-16 order: U+10000 (D800 DC00) sorts before U+E000, unlike in UTF-8 bytes.
		{`{"\ue000":2,"\ud800\udc00":1}`, "{\"\U00010000\":1,\"\ue000\":2}"},
		{`-9007199254740991`, `-9007199254740991`},
	} {
		got, err := Canonical([]byte(tc.in))
		if err != nil {
			t.Errorf("Canonical(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Canonical(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":1}`, `1.5`, `1e3`, `9007199254740992`, `-0`, `{} {}`, "\"\xff\"", `[`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) succeeded", bad)
		}
	}
}

// FuzzVerifyReceipt: Verify never panics, and whatever it accepts has the
// signed receipt's exact canonical form: only untampered receipts verify
// (re-spacing or reordering members changes no value and is accepted).
func FuzzVerifyReceipt(f *testing.F) {
	s := testSigner(1)
	doc, _, err := s.Sign(testReceipt())
	if err != nil {
		f.Fatal(err)
	}
	var d Document
	if err := json.Unmarshal(doc, &d); err != nil {
		f.Fatal(err)
	}
	want := []byte(d.Receipt)
	if c, err := Canonical(want); err != nil || !bytes.Equal(c, want) {
		f.Fatalf("issued receipt is not in canonical form: %v\n%s", err, want)
	}
	keys := keysOf(s)
	f.Add(doc)
	f.Add([]byte(`{"receipt":{},"signature":{"alg":"ed25519","key_id":"x","value":""}}`))
	f.Add([]byte(strings.Replace(string(doc), `"rows":1`, `"rows":2`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := Verify(data, keys)
		if err != nil {
			return
		}
		var got Document
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("accepted a document that does not parse: %v", err)
		}
		canon, err := Canonical(got.Receipt)
		if err != nil || !bytes.Equal(canon, want) {
			t.Fatalf("accepted a receipt other than the signed one:\n%s", got.Receipt)
		}
		if rc.RequestID != "0195f0a4-0000-7000-8000-000000000001" {
			t.Fatalf("request id = %q", rc.RequestID)
		}
	})
}

// FuzzSignDigest: the digest Sign returns is the one Digest reads back
// from the document, whatever text the receipt carries; the audit chain
// records the first and chain verification recomputes the second.
func FuzzSignDigest(f *testing.F) {
	for _, seed := range []string{"tax law", "<§147 AO> & \"10y\"\n", "\u2028\u2029", "\xff\xfe", "ü\x00\t"} {
		f.Add(seed)
	}
	s := testSigner(1)
	f.Fuzz(func(t *testing.T, reason string) {
		rc := testReceipt()
		rc.Retained[0].Reason = reason
		rc.Targets[0].Items[1].Reason = reason
		doc, digest, err := s.Sign(rc)
		if err != nil {
			t.Fatal(err) // any text can be signed
		}
		read, err := Digest(doc)
		if err != nil || read != digest {
			t.Fatalf("Sign's digest %s; read back %s (%v)", digest, read, err)
		}
	})
}
