package s2s

import (
	"encoding/json"
	"strings"
	"unicode"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
)

// body is the request body. The raw value lets the check below tell an
// absent or null user_id (missing) from one of the wrong type, and name the
// field in its own words.
type body struct {
	UserID json.RawMessage `json:"user_id"`
}

// DecodeBody parses a request body strictly (request.UnmarshalStrict: one
// JSON object, valid UTF-8, no duplicate or unknown members, nothing after
// it) and returns its user_id as a normalised identity. Every error is a
// *lethe.Error with code EINVALID whose message names the problem, never the
// value.
func DecodeBody(data []byte) (lethe.Identity, error) {
	var b body
	if err := request.UnmarshalStrict(data, &b); err != nil {
		if lethe.ErrorCode(err) != lethe.EINVALID {
			return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "request body is invalid")
		}
		return lethe.Identity{}, err
	}
	if len(b.UserID) == 0 || string(b.UserID) == "null" {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id is missing")
	}
	var raw string
	if b.UserID[0] != '"' || json.Unmarshal(b.UserID, &raw) != nil {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id must be a string")
	}
	v := strings.TrimSpace(raw)
	if v == "" {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id is missing")
	}
	if len(v) > lethe.MaxValueLen {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id is longer than %d bytes", lethe.MaxValueLen)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id contains control characters")
	}
	id, err := lethe.NormalizeIdentity(lethe.Identity{Type: lethe.IdentityUserID, Value: v})
	if err != nil { // the checks above mirror it; this catches a future rule
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "user_id is invalid")
	}
	return id, nil
}
