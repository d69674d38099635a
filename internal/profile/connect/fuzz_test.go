package connect_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
)

func FuzzDecodeConnect(f *testing.F) {
	for _, s := range []string{
		seedBody, `{}`, `{"identifier":null}`, `{"identifier":"a@b.co"}`, `{"identifier":"+49 151 1234 5678"}`,
		`{"identifier":"1","identifier":"2"}`, "{\"identifier\":\"\xff\"}", `{"identifiers":["a","b"]}`,
		`{"identifiers":[null]}`, `{"identifiers":[]}`, `{"identifiers":"a"}`,
		`{"client_id":"a","client_secret":"b","grant_type":"client_credentials","scope":"connect:compliance"}`,
		`{"client_id":"a","client_secret":"b","grant_type":"client_credentials","scope":"x"}`,
	} {
		f.Add([]byte(s))
	}
	valid := func(t *testing.T, id lethe.Identity) {
		t.Helper()
		if id.Type != lethe.IdentityEmail && id.Type != lethe.IdentityPhone && id.Type != lethe.IdentityUserID {
			t.Fatalf("accepted identity type %q", id.Type)
		}
		if n, err := lethe.NormalizeIdentity(id); err != nil || n != id {
			t.Fatalf("accepted %s identity does not normalise to itself: %v", id.Type, err)
		}
	}
	wellFormed := func(t *testing.T, data []byte) {
		t.Helper()
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatal("accepted a body that is not valid UTF-8 JSON")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if id, err := connect.DecodeDelete(data); err == nil {
			wellFormed(t, data)
			valid(t, id)
		} else if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Fatalf("delete: error code %s", lethe.ErrorCode(err))
		}
		if raw, ids, err := connect.DecodeStatus(data, 100); err == nil {
			wellFormed(t, data)
			if len(raw) == 0 || len(raw) > 100 || len(raw) != len(ids) {
				t.Fatalf("status: %d identifiers, %d identities", len(raw), len(ids))
			}
			for _, id := range ids {
				valid(t, id)
			}
		} else if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Fatalf("status: error code %s", lethe.ErrorCode(err))
		}
		if tr, err := connect.DecodeToken(data); err == nil {
			wellFormed(t, data)
			if tr.GrantType != connect.GrantType || tr.ClientID == "" || tr.ClientSecret == "" {
				t.Fatalf("token: accepted %+v", tr)
			}
		} else if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Fatalf("token: error code %s", lethe.ErrorCode(err))
		}
	})
}
