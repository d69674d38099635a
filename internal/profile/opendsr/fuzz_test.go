package opendsr_test

import (
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/profile/opendsr"
)

// FuzzDecodeRequest: no body panics; every refusal is EINVALID and never
// echoes a value; an accepted body is an erasure with a valid id and at
// least one identity lethe can erase by.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(erasure(newID(1), "ana@example.com", "https://c.example.com/cb"))
	f.Add([]byte(`{"subject_request_id":"zz-secret-value","subject_request_type":"access"}`))
	f.Add([]byte(`{"subject_identities":[{"identity_type":"email","identity_value":"zz-secret-value","identity_format":"raw"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := opendsr.DecodeRequest(body)
		if err != nil {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Fatalf("code %s", lethe.ErrorCode(err))
			}
			if strings.Contains(lethe.ErrorMessage(err), "zz-secret") {
				t.Fatalf("message %q echoes a value", lethe.ErrorMessage(err))
			}
			return
		}
		if r.Type != opendsr.TypeErasure || len(r.Identities) == 0 || len(r.SubjectRequestID) != 36 || r.SubmittedTime.IsZero() {
			t.Fatalf("accepted %+v", r)
		}
		for _, id := range r.Identities {
			if _, err := lethe.NormalizeIdentity(id); err != nil {
				t.Fatalf("accepted an identity that does not normalise: %v", err)
			}
		}
	})
}
