package request

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
)

// createBody has the shape of the native API's creation body, the deepest
// lethe decodes.
type createBody struct {
	Identities  []identityBody `json:"identities"`
	Regulation  string         `json:"regulation,omitempty"`
	ExternalID  string         `json:"external_id,omitempty"`
	CallbackURL string         `json:"callback_url,omitempty"`
}

type identityBody struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

const validBody = `{"identities":[{"type":"email","value":"jane@example.com"}]}`

func TestUnmarshalStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want *createBody // nil: must be rejected
		msg  string      // substring of the message when rejected
		hide string      // a name of the client's the message must not echo
	}{
		{name: "minimal", in: `{"identities":[{"type":"email","value":"a@b.co"}]}`,
			want: &createBody{Identities: []identityBody{{Type: "email", Value: "a@b.co"}}}},
		{name: "all fields, whitespace", in: " \n{ \"identities\" : [ ] , \"regulation\":\"gdpr\",\"external_id\":\"e\",\"callback_url\":\"https://x.example\" }\n\t",
			want: &createBody{Identities: []identityBody{}, Regulation: "gdpr", ExternalID: "e", CallbackURL: "https://x.example"}},
		{name: "null members", in: `{"identities":null,"regulation":null}`, want: &createBody{}},
		{name: "case-variant name (encoding/json matching)", in: `{"Identities":[]}`, want: &createBody{Identities: []identityBody{}}},
		{name: "escaped names and values", in: `{"ext\u0065rnal_id":"\u00e9\ud83d\ude00"}`, want: &createBody{ExternalID: "é😀"}},
		{name: "same name in different objects", in: `{"identities":[{"type":"a","value":"1"},{"type":"b","value":"2"}]}`,
			want: &createBody{Identities: []identityBody{{"a", "1"}, {"b", "2"}}}},

		{name: "empty", in: ``, msg: "required"},
		{name: "blank", in: " \t\n", msg: "required"},
		{name: "invalid UTF-8 in value", in: "{\"external_id\":\"\xc3\x28\"}", msg: "UTF-8"},
		{name: "invalid UTF-8 in name", in: "{\"\xff\":1}", msg: "UTF-8"},
		{name: "BOM", in: "\ufeff{}", msg: "not valid JSON"},
		{name: "array", in: `[]`, msg: "JSON object"},
		{name: "string", in: `"x"`, msg: "JSON object"},
		{name: "number", in: `1`, msg: "JSON object"},
		{name: "null", in: `null`, msg: "JSON object"},
		{name: "unterminated", in: `{"identities":[`, msg: "not valid JSON"},
		{name: "missing colon", in: `{"identities" []}`, msg: "not valid JSON"},
		{name: "trailing comma", in: `{"identities":[],}`, msg: "not valid JSON"},
		{name: "single quotes", in: `{'identities':[]}`, msg: "not valid JSON"},
		{name: "comment", in: `{/*x*/}`, msg: "not valid JSON"},
		{name: "trailing object", in: `{}{}`, msg: "after the JSON object"},
		{name: "trailing value", in: `{} 1`, msg: "after the JSON object"},
		{name: "trailing garbage", in: `{}x`, msg: "after the JSON object"},
		{name: "duplicate", in: `{"regulation":"gdpr","regulation":"ccpa"}`, msg: "more than once", hide: "regulation"},
		{name: "duplicate by case", in: `{"regulation":"gdpr","REGULATION":"ccpa"}`, msg: "more than once", hide: "REGULATION"},
		{name: "duplicate by Kelvin sign", in: `{"k":1,"\u212a":2}`, msg: "more than once"},
		{name: "duplicate by escape", in: `{"regulation":"gdpr","r\u0065gulation":"ccpa"}`, msg: "more than once"},
		{name: "duplicate nested", in: `{"identities":[{"type":"a","type":"b"}]}`, msg: "more than once"},
		{name: "duplicate in unknown member", in: `{"xq":{"jane@example.com":1,"jane@example.com":2}}`, msg: "more than once", hide: "jane"},
		{name: "unknown member", in: `{"identity":[]}`, msg: "does not accept", hide: "identity\""},
		{name: "unknown nested member", in: `{"identities":[{"kind":"email"}]}`, msg: "does not accept", hide: "kind"},
		{name: "unknown member named like a value", in: `{"jane@example.com":1}`, msg: "does not accept", hide: "jane"},
		{name: "wrong type, name in another case", in: `{"IDENTITIES":{}}`, msg: `"identities" must be an array`, hide: "IDENTITIES"},
		{name: "wrong type", in: `{"identities":{}}`, msg: `"identities" must be an array`},
		{name: "wrong nested type", in: `{"identities":[{"value":12345}]}`, msg: `"identities.value" must be a string`},
		{name: "wrong element type", in: `{"identities":["a@b.co"]}`, msg: `must be an object`},
		{name: "too deep", in: `{"x":` + strings.Repeat(`[`, maxJSONDepth) + strings.Repeat(`]`, maxJSONDepth) + `}`, msg: "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got createBody
			err := UnmarshalStrict([]byte(tt.in), &got)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if diff := cmp.Diff(*tt.want, got); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
				return
			}
			le, ok := errors.AsType[*lethe.Error](err)
			if !ok {
				t.Fatalf("error %v is not a *lethe.Error", err)
			}
			if le.Code != lethe.EINVALID {
				t.Errorf("code = %q, want %q", le.Code, lethe.EINVALID)
			}
			if !strings.Contains(le.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", le.Message, tt.msg)
			}
			if tt.hide != "" && strings.Contains(le.Message, tt.hide) {
				t.Errorf("message %q echoes the client's %q", le.Message, tt.hide)
			}
		})
	}
}

// TestUnmarshalStrictHidesValues: messages name members, never values.
func TestUnmarshalStrictHidesValues(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"identities":[{"type":"email","value":4915112345678}]}`,
		`{"identities":[{"type":"email","value":true}]}`,
		`{"identities":[{"type":"email","value":["secret@x.org"]}]}`,
		`{"identities":"secret@x.org"}`,
		`{"identities":[{"type":"email","value":"secret@x.org"}]} "secret@x.org"`,
	} {
		err := UnmarshalStrict([]byte(in), &createBody{})
		if err == nil {
			t.Fatalf("%s accepted", in)
		}
		msg := lethe.ErrorMessage(err)
		for _, v := range []string{"4915112345678", "secret", "true"} {
			if strings.Contains(msg, v) {
				t.Errorf("%s: message %q shows %q", in, msg, v)
			}
		}
	}
}

func TestDecodeJSONContentType(t *testing.T) {
	t.Parallel()
	for ct, wantCode := range map[string]string{
		"application/json":                    "",
		"application/json; charset=utf-8":     "",
		"Application/JSON; Charset=\"UTF-8\"": "",
		"application/json;charset=utf-8;x=1":  "",
		"":                                    lethe.EUNSUPPORTED,
		"text/json":                           lethe.EUNSUPPORTED,
		"application/json-patch+json":         lethe.EUNSUPPORTED,
		"application/json; charset=utf-16":    lethe.EUNSUPPORTED,
		"application/json; charset":           lethe.EUNSUPPORTED,
		"application/json,text/plain":         lethe.EUNSUPPORTED,
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		err := DecodeJSON(r, 1<<10, &createBody{})
		if got := lethe.ErrorCode(err); got != wantCode {
			t.Errorf("Content-Type %q: code %q, want %q (%v)", ct, got, wantCode, err)
		}
	}
}

func TestDecodeJSONLimit(t *testing.T) {
	t.Parallel()
	body := `{"external_id":"` + strings.Repeat("x", 100) + `"}`
	for limit, wantCode := range map[int64]string{
		int64(len(body)):     "",
		int64(len(body) - 1): lethe.ETOOLARGE,
	} {
		for _, declared := range []bool{true, false} {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if !declared {
				r.ContentLength = -1
			}
			err := DecodeJSON(r, limit, &createBody{})
			if got := lethe.ErrorCode(err); got != wantCode {
				t.Errorf("limit %d declared %v: code %q, want %q", limit, declared, got, wantCode)
			}
		}
	}
}

// FuzzDecodeJSON: DecodeJSON never panics; what it accepts is valid JSON
// that survives a round trip unchanged; what it rejects is a *lethe.Error
// with a 4xx code.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		validBody,
		`{"identities":[{"type":"email","value":"a@b.co"},{"type":"phone","value":"+4915112345678"}],"regulation":"ccpa","external_id":"x","callback_url":"https://h.example/c"}`,
		`{"identities":null}`,
		`{"Identities":[],"REGULATION":"gdpr"}`,
		`{"regulation":"gdpr","regulation":"ccpa"}`,
		`{"k":1,"\u212a":2}`,
		`{"identities":[{"type":1}]}`,
		`{} {}`,
		`[]`,
		"{\"external_id\":\"\xff\"}",
		`{"external_id":"\ud800"}`,
		`{"x":[[[[[[[[]]]]]]]]}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(string(data)))
		r.Header.Set("Content-Type", "application/json")
		var v createBody
		err := DecodeJSON(r, 4<<10, &v)
		if err != nil {
			le, ok := errors.AsType[*lethe.Error](err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *lethe.Error", err, err)
			}
			switch le.Code {
			case lethe.EINVALID, lethe.ETOOLARGE, lethe.EUNSUPPORTED: // the 4xx codes
			default:
				t.Fatalf("code %q is not a client error", le.Code)
			}
			if le.Message == "" {
				t.Fatal("empty message")
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal accepted value: %v", err)
		}
		var w createBody
		if err := UnmarshalStrict(again, &w); err != nil {
			t.Fatalf("re-encoding %s of accepted %q is rejected: %v", again, data, err)
		}
		if diff := cmp.Diff(v, w); diff != "" {
			t.Fatalf("round trip of %q changed it (-first +second):\n%s", data, diff)
		}
	})
}
