// Package request reads what API clients send, for every API surface lethe
// serves (the native API, the partner profiles, the console): bodies read
// within a limit and decoded strictly, and credentials taken from headers
// or forms. Every error it returns is a *lethe.Error with a 4xx code, so
// each surface answers it in its own error shape. It imports no API
// surface, and none of them imports another: this package is what they
// share.
package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
)

// maxJSONDepth bounds nesting. Every lethe body is a few levels deep; the
// bound stops a 64 KiB "[[[[..." from costing more than it must.
const maxJSONDepth = 32

// DecodeJSON reads r's body as strictly as the API promises (see ReadJSON
// and UnmarshalStrict) into v, which must be a pointer to a struct. Every
// error it returns is a *lethe.Error with a 4xx code.
func DecodeJSON(r *http.Request, limit int64, v any) error {
	data, err := ReadJSON(r, limit)
	if err != nil {
		return err
	}
	return UnmarshalStrict(data, v)
}

// ReadJSON checks that r declares a JSON body (Content-Type
// application/json, charset utf-8 if any: else EUNSUPPORTED) and returns the
// body, at most limit bytes (else ETOOLARGE, decided from Content-Length
// before reading when the client declares it). An empty body is EINVALID.
// Profiles that must see the raw bytes (to verify a signature) call this,
// then UnmarshalStrict.
func ReadJSON(r *http.Request, limit int64) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	return ReadBody(r, limit)
}

func tooLarge(limit int64) error {
	return lethe.Errorf(lethe.ETOOLARGE, "request body is larger than %d bytes", limit)
}

func errMissingBody() error {
	return lethe.Errorf(lethe.EINVALID, "request body is required (a JSON object)")
}

func checkContentType(v string) error {
	return checkMediaType(v, "application/json")
}

// checkMediaType accepts v when it names want, with charset utf-8 if any.
func checkMediaType(v, want string) error {
	if v == "" {
		return lethe.Errorf(lethe.EUNSUPPORTED, "Content-Type must be %s", want)
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != want {
		return lethe.Errorf(lethe.EUNSUPPORTED, "Content-Type must be %s", want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return lethe.Errorf(lethe.EUNSUPPORTED, "Content-Type charset must be utf-8")
	}
	return nil
}

// UnmarshalStrict decodes data, which must be exactly one JSON object in
// valid UTF-8, into v (a pointer to a struct). Beyond encoding/json it
// rejects: invalid UTF-8 (which encoding/json would silently replace),
// members v has no field for, duplicate member names (compared the way
// encoding/json matches field names, case-insensitively, so no two members
// can both set one field), nesting deeper than 32 levels, and anything
// after the object. Every error is a *lethe.Error with code EINVALID whose
// message names at most a member of v (its JSON name, never the name as the
// client spelt it) and never a value.
func UnmarshalStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errMissingBody()
	}
	if !utf8.Valid(data) {
		return lethe.Errorf(lethe.EINVALID, "request body is not valid UTF-8")
	}
	if err := checkStructure(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	return nil
}

// frame is one open object or array while walking the tokens.
type frame struct {
	object  bool
	wantKey bool // in an object: the next token is a member name or '}'
	keys    map[string]struct{}
}

// checkStructure walks data's tokens and enforces what encoding/json does
// not: a single top-level object, unique member names, bounded depth, and
// nothing after the object.
func checkStructure(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are only skipped here; no float conversion needed
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if tok != json.Delim('{') {
		return lethe.Errorf(lethe.EINVALID, "request body must be a JSON object")
	}
	stack := []frame{{object: true, wantKey: true, keys: map[string]struct{}{}}}
	// valueDone records, in the enclosing object, that its member's value
	// ended, so the next token is again a name.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		top := &stack[len(stack)-1]
		if top.object && top.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			name, ok := tok.(string)
			if !ok { // the decoder already refuses this; kept as a guard
				return lethe.Errorf(lethe.EINVALID, "request body is not valid JSON")
			}
			folded := foldName(name)
			if _, dup := top.keys[folded]; dup {
				// The name is the client's, possibly an identity typed
				// in the wrong place: it is not echoed.
				return lethe.Errorf(lethe.EINVALID, "request body has a member more than once")
			}
			top.keys[folded] = struct{}{}
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return lethe.Errorf(lethe.EINVALID, "request body is nested deeper than %d levels", maxJSONDepth)
			}
			f := frame{object: tok == json.Delim('{')}
			if f.object {
				f.wantKey, f.keys = true, map[string]struct{}{}
			}
			stack = append(stack, f)
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default: // a scalar value
			valueDone()
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return lethe.Errorf(lethe.EINVALID, "request body has data after the JSON object")
	}
	return nil
}

// foldName folds a member name the way encoding/json matches names to
// fields: each rune becomes the smallest rune of its case-folding orbit.
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}

func syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return lethe.Errorf(lethe.EINVALID, "request body is not valid JSON: unexpected end of input")
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return lethe.Errorf(lethe.EINVALID, "request body is not valid JSON (at byte %d)", se.Offset)
	}
	return lethe.Errorf(lethe.EINVALID, "request body is not valid JSON")
}

// decodeError turns an encoding/json error into a message that names the
// member and the expected type, never the value (a value may be an
// identity).
func decodeError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return lethe.Errorf(lethe.EINVALID, "request body must be %s", jsonType(te.Type))
		}
		// Field is the path of v's own JSON names, whatever case the
		// client used.
		return lethe.Errorf(lethe.EINVALID, "member %q must be %s", clipName(te.Field), jsonType(te.Type))
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		// The unknown name is the client's and is not echoed.
		return lethe.Errorf(lethe.EINVALID, "request body has a member this endpoint does not accept")
	}
	if _, ok := errors.AsType[*json.InvalidUnmarshalError](err); ok {
		// A programming error (v is not a pointer), not the client's.
		return lethe.Errorf(lethe.EINTERNAL, "decode target: %v", err)
	}
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return syntaxError(err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return syntaxError(err)
	}
	// Anything else (a custom unmarshaler's error) may quote the value, so
	// its text is not passed on.
	return lethe.Errorf(lethe.EINVALID, "request body does not match the expected schema")
}

func jsonType(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a JSON value"
}

// clipName bounds a member path echoed in a message: nested paths can be
// long.
func clipName(s string) string {
	if len(s) > 40 {
		s = strings.ToValidUTF8(s[:40], "") + "..."
	}
	return s
}
