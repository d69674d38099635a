package connect

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
)

// GrantType is the only OAuth grant the token endpoint serves.
const GrantType = "client_credentials"

// Scope is the only scope tokens are granted.
const Scope = "connect:compliance"

// TokenRequest is a decoded token request.
type TokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Scope        string `json:"scope"`
}

// DecodeToken parses and checks a JSON token request body that carries
// the client's credentials. Errors unwrap to a *lethe.Error with code
// EINVALID.
func DecodeToken(data []byte) (TokenRequest, error) {
	var t TokenRequest
	if err := unmarshal(data, &t); err != nil {
		return TokenRequest{}, err
	}
	if err := t.check(); err != nil {
		return TokenRequest{}, err
	}
	return t, nil
}

// check reports what is missing or wrong in a complete token request.
func (t TokenRequest) check() error {
	switch {
	case t.GrantType == "":
		return lethe.Errorf(lethe.EINVALID, "grant_type is missing")
	case t.GrantType != GrantType:
		return newGrantError(oauthUnsupportedGrantType, "grant_type must be %q", GrantType)
	case t.ClientID == "":
		return lethe.Errorf(lethe.EINVALID, "client_id is missing")
	case t.ClientSecret == "":
		return lethe.Errorf(lethe.EINVALID, "client_secret is missing")
	}
	for _, s := range strings.Fields(t.Scope) {
		if s != Scope {
			return newGrantError(oauthInvalidScope, "scope may only be %q", Scope)
		}
	}
	return nil
}

// DecodeDelete parses a deletion body, {"identifier":"..."}, and classifies
// the identifier (email, phone, else user id). Errors are *lethe.Error with
// code EINVALID and never quote the value.
func DecodeDelete(data []byte) (lethe.Identity, error) {
	var b struct {
		Identifier *string `json:"identifier"`
	}
	if err := unmarshal(data, &b); err != nil {
		return lethe.Identity{}, err
	}
	if b.Identifier == nil {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "identifier is missing")
	}
	id, msg := classify(*b.Identifier)
	if msg != "" {
		return lethe.Identity{}, lethe.Errorf(lethe.EINVALID, "identifier %s", msg)
	}
	return id, nil
}

// DecodeStatus parses a status body, {"identifiers":[...]}, with at most max
// entries, and returns the identifiers as given with their identities.
func DecodeStatus(data []byte, max int) ([]string, []lethe.Identity, error) {
	var b struct {
		Identifiers []*string `json:"identifiers"`
	}
	if err := unmarshal(data, &b); err != nil {
		return nil, nil, err
	}
	if len(b.Identifiers) == 0 {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "identifiers must list at least one identifier")
	}
	if len(b.Identifiers) > max {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "identifiers may list at most %d identifiers", max)
	}
	raw := make([]string, len(b.Identifiers))
	ids := make([]lethe.Identity, len(b.Identifiers))
	for i, p := range b.Identifiers {
		if p == nil {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "identifiers[%d] is missing", i)
		}
		id, msg := classify(*p)
		if msg != "" {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "identifiers[%d] %s", i, msg)
		}
		raw[i], ids[i] = *p, id
	}
	return raw, ids, nil
}

// classify returns the identity of a customer identifier, or what is wrong
// with it (to follow the field's name in a message).
func classify(s string) (lethe.Identity, string) {
	v := strings.TrimSpace(s)
	switch {
	case v == "":
		return lethe.Identity{}, "is missing"
	case len(v) > lethe.MaxValueLen:
		return lethe.Identity{}, fmt.Sprintf("is longer than %d bytes", lethe.MaxValueLen)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return lethe.Identity{}, "contains control characters"
	}
	id, err := lethe.ClassifyIdentifier(v)
	if err != nil { // the checks above mirror it; this catches a future rule
		return lethe.Identity{}, "is invalid"
	}
	return id, ""
}

// unmarshal decodes strictly and keeps every error an EINVALID.
func unmarshal(data []byte, v any) error {
	if err := request.UnmarshalStrict(data, v); err != nil {
		if lethe.ErrorCode(err) != lethe.EINVALID {
			return lethe.Errorf(lethe.EINVALID, "request body is invalid")
		}
		return err
	}
	return nil
}
