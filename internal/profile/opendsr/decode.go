package opendsr

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
)

// Request types (section 6.2). Only erasure is carried out.
const (
	TypeErasure     = "erasure"
	TypeAccess      = "access"
	TypePortability = "portability"
)

// identityTypes maps the OpenDSR identity types lethe can erase by
// (section 5.1) to lethe's. Only the raw format is accepted: lethe needs
// the value itself to find and erase data.
var identityTypes = map[string]lethe.IdentityType{
	"email":                  lethe.IdentityEmail,
	"controller_customer_id": lethe.IdentityUserID,
}

// knownIdentityTypes are the types section 5.1 lists.
var knownIdentityTypes = map[string]bool{
	"controller_customer_id": true, "android_advertising_id": true, "android_id": true, "email": true,
	"fire_advertising_id": true, "ios_advertising_id": true, "ios_vendor_id": true,
	"microsoft_advertising_id": true, "microsoft_publisher_id": true,
	"roku_publisher_id": true, "roku_advertising_id": true,
}

var knownFormats = map[string]bool{"raw": true, "sha1": true, "md5": true, "sha256": true}

// uuidV4 is a lowercase version 4 UUID (section 1.1).
var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

type identityJSON struct {
	Type   *string `json:"identity_type"`
	Value  *string `json:"identity_value"`
	Format *string `json:"identity_format"`
}

type requestJSON struct {
	Regulation         *string                    `json:"regulation"`
	SubjectRequestID   *string                    `json:"subject_request_id"`
	SubjectRequestType *string                    `json:"subject_request_type"`
	SubjectIdentities  []identityJSON             `json:"subject_identities"`
	SubmittedTime      *string                    `json:"submitted_time"`
	APIVersion         *string                    `json:"api_version"`
	StatusCallbackURLs []string                   `json:"status_callback_urls"`
	Extensions         map[string]json.RawMessage `json:"extensions"`
}

// Request is a decoded OpenDSR request (section 7.1.1).
type Request struct {
	Regulation       lethe.Regulation
	SubjectRequestID string
	Type             string
	Identities       []lethe.Identity
	SubmittedTime    time.Time
	// CallbackURL is the one status_callback_urls entry, or "".
	CallbackURL string
}

// DecodeRequest parses a request body strictly (request.UnmarshalStrict)
// and checks it. Every error is EINVALID and names a member, never a
// value. A type other than erasure is refused here too, in the words the
// answer uses.
func DecodeRequest(data []byte) (Request, error) {
	var b requestJSON
	if err := request.UnmarshalStrict(data, &b); err != nil {
		if lethe.ErrorCode(err) != lethe.EINVALID {
			return Request{}, lethe.Errorf(lethe.EINVALID, "request body is invalid")
		}
		return Request{}, err
	}
	var r Request
	req := func(name string, v *string) (string, error) {
		if v == nil || strings.TrimSpace(*v) == "" {
			return "", lethe.Errorf(lethe.EINVALID, "%s field is required", name)
		}
		if len(*v) > 2048 || strings.IndexFunc(*v, unicode.IsControl) >= 0 {
			return "", lethe.Errorf(lethe.EINVALID, "%s field is invalid", name)
		}
		return *v, nil
	}
	id, err := req("subject_request_id", b.SubjectRequestID)
	if err != nil {
		return r, err
	}
	if !uuidV4.MatchString(id) {
		return r, lethe.Errorf(lethe.EINVALID, "subject_request_id must be a lowercase UUID v4")
	}
	r.SubjectRequestID = id
	typ, err := req("subject_request_type", b.SubjectRequestType)
	if err != nil {
		return r, err
	}
	switch typ {
	case TypeErasure:
	case TypeAccess, TypePortability:
		return r, lethe.Errorf(lethe.EINVALID, "subject_request_type %s is not supported; this processor supports erasure", typ)
	default:
		return r, lethe.Errorf(lethe.EINVALID, "subject_request_type must be erasure, access or portability")
	}
	r.Type = typ
	// Section 7.1.1 requires regulation, yet section 7.2's example, the
	// one controllers copy, has none: an absent regulation is GDPR, the
	// regulation the protocol was written for (it was OpenGDPR).
	reg := "gdpr"
	if b.Regulation != nil {
		var err error
		if reg, err = req("regulation", b.Regulation); err != nil {
			return r, err
		}
	}
	switch reg {
	case "gdpr":
		r.Regulation = lethe.GDPR
	case "ccpa":
		r.Regulation = lethe.CCPA
	default:
		return r, lethe.Errorf(lethe.EINVALID, "regulation must be gdpr or ccpa")
	}
	st, err := req("submitted_time", b.SubmittedTime)
	if err != nil {
		return r, err
	}
	if r.SubmittedTime, err = time.Parse(time.RFC3339Nano, st); err != nil {
		return r, lethe.Errorf(lethe.EINVALID, "submitted_time must be an RFC 3339 date")
	}
	if b.APIVersion != nil && !strings.HasPrefix(*b.APIVersion, "2.") && *b.APIVersion != "2" {
		return r, lethe.Errorf(lethe.EINVALID, "api_version must be 2.x")
	}
	switch len(b.StatusCallbackURLs) {
	case 0:
	case 1:
		r.CallbackURL = b.StatusCallbackURLs[0]
	default:
		// lethe keeps one callback URL per request; calling only some of
		// several would break section 8.5's "all included callbacks".
		return r, lethe.Errorf(lethe.EINVALID, "status_callback_urls may hold at most one URL")
	}
	if len(b.SubjectIdentities) == 0 {
		return r, lethe.Errorf(lethe.EINVALID, "subject_identities field is required")
	}
	for i, in := range b.SubjectIdentities {
		t, err := req("identity_type", in.Type)
		if err != nil {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: %s", i, lethe.ErrorMessage(err))
		}
		f, err := req("identity_format", in.Format)
		if err != nil {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: %s", i, lethe.ErrorMessage(err))
		}
		v, err := req("identity_value", in.Value)
		if err != nil {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: %s", i, lethe.ErrorMessage(err))
		}
		if !knownIdentityTypes[t] || !knownFormats[f] {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: identity_type or identity_format is not one of section 5", i)
		}
		lt, ok := identityTypes[t]
		if !ok || f != "raw" {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: %s in format %s is not supported (see /discovery)", i, t, f)
		}
		id, err := lethe.NormalizeIdentity(lethe.Identity{Type: lt, Value: v})
		if err != nil {
			return r, lethe.Errorf(lethe.EINVALID, "subject_identities[%d]: identity_value is not a valid %s", i, t)
		}
		r.Identities = append(r.Identities, id)
	}
	return r, nil
}
