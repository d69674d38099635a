package httprecipe

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/redact"
)

var hmacHashes = map[string]func() hash.Hash{"sha256": sha256.New, "sha1": sha1.New, "sha512": sha512.New}

// answer is one call's outcome.
type answer struct {
	status  int
	doc     any  // the decoded JSON answer; nil when empty or not JSON
	unknown bool // a status the recipe lists as "the vendor does not know it"
	header  http.Header
}

// call makes one call of the recipe: templates filled from e, every auth
// scheme applied, one new token and one repeat after a 401 with OAuth2.
// Answers outside OK and Unknown become the client's classified errors,
// with the vendor's message redacted against ids.
func (c *Connector) call(ctx context.Context, q *Request, e env, ids []lethe.Identity) (*answer, error) {
	stale := ""
	for try := 0; ; try++ {
		pc, tok, err := c.build(ctx, q, e, stale)
		if err != nil {
			return nil, err
		}
		r, err := c.client.Do(ctx, pc)
		if err != nil {
			return nil, err
		}
		if r.Status == http.StatusUnauthorized && c.oauth != nil {
			if try == 0 {
				stale = tok
				continue
			}
			return nil, connector.Permanent(c.client.Errorf("%s refused a fresh access token (401)", q.What))
		}
		a := &answer{status: r.Status, header: r.Header}
		if len(r.Body) > 0 {
			a.doc, _ = decodeJSON(r.Body) // non-JSON answers only count by status
		}
		switch {
		case slices.Contains(q.Unknown, r.Status):
			a.unknown = true
			return a, nil
		case len(q.OK) > 0 && slices.Contains(q.OK, r.Status), len(q.OK) == 0 && r.Status >= 200 && r.Status < 300:
			return a, nil
		}
		return nil, c.client.Classify(q.What, r, c.message(a.doc, ids))
	}
}

// message is the vendor's error message, redacted: vendors quote what they
// were sent.
func (c *Connector) message(doc any, ids []lethe.Identity) string {
	if c.recipe.Errors.Message == "" || doc == nil {
		return ""
	}
	var parts []string
	for _, v := range evalPath(c.recipe.Errors.Message, doc) {
		if s, ok := scalar(v); ok && s != "" {
			parts = append(parts, s)
		}
	}
	msg := strings.Join(parts, "; ")
	// Vendors quote the credential they refused too; redact knows
	// identities, not keys.
	for _, sec := range c.secrets() {
		msg = strings.ReplaceAll(msg, sec, redact.Placeholder)
	}
	return redact.String(msg, ids)
}

// secrets are the values a vendor's message must not carry back: the
// secret settings and the current access token.
func (c *Connector) secrets() []string {
	var out []string
	for name, st := range c.recipe.Settings {
		if v := c.base.strs["settings."+name]; st.Secret && v != "" {
			out = append(out, v)
		}
	}
	if c.oauth != nil {
		if tok := c.oauth.Current(); tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// build renders q into a processor.Call, returning the bearer token used
// (for a 401's stale token).
func (c *Connector) build(ctx context.Context, q *Request, e env, stale string) (processor.Call, string, error) {
	fail := func(what string) (processor.Call, string, error) {
		// Template values are checked at load; what fails here is a value
		// (never shown) that cannot go where the recipe puts it.
		return processor.Call{}, "", connector.Permanent(c.client.Errorf("%s: cannot build the call: %s", q.What, what))
	}
	path := q.Path
	if !q.literal {
		var err error
		if path, err = renderPath(q.Path, e); err != nil {
			return fail("a value is missing")
		}
	}
	h := http.Header{}
	for k, v := range q.Header {
		s, err := renderString(v, e)
		if err != nil || strings.ContainsAny(s, "\r\n") {
			return fail("a header value is not allowed")
		}
		h.Set(k, s)
	}
	var err error
	var body []byte
	var form url.Values
	var bodyExtra [][2]string
	if q.Form != nil {
		form = url.Values{}
		for k, v := range q.Form {
			s, err := renderString(v, e)
			if err != nil {
				return fail("a value is missing")
			}
			form.Set(k, s)
		}
	}
	token := ""
	for i := range c.recipe.Auth {
		a := &c.recipe.Auth[i]
		val := func(s string) string { v, _ := renderString(s, e); return v }
		switch a.Type {
		case "bearer":
			h.Set("Authorization", "Bearer "+val(a.Token))
		case "basic":
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(val(a.Username)+":"+val(a.Password))))
		case "header":
			h.Set(a.Name, val(a.Value))
		case "query":
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			path += sep + url.QueryEscape(a.Name) + "=" + url.QueryEscape(val(a.Value))
		case "body":
			if form != nil {
				form.Set(a.Name, val(a.Value))
			} else {
				bodyExtra = append(bodyExtra, [2]string{a.Name, val(a.Value)})
			}
		case "oauth2":
			token, err = c.bearer(ctx, a, e, stale)
			if err != nil {
				return processor.Call{}, "", err
			}
			h.Set("Authorization", "Bearer "+token)
		}
	}
	switch {
	case q.body != nil:
		body, err = q.body.render(e, bodyExtra)
		if err != nil {
			return fail("a value is missing")
		}
		h.Set("Content-Type", "application/json")
	case form != nil:
		body = []byte(form.Encode())
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	case len(bodyExtra) > 0:
		body, _ = (&bodyTemplate{obj: []bodyField{}}).render(e, bodyExtra)
		h.Set("Content-Type", "application/json")
	}
	for i := range c.recipe.Auth {
		if a := &c.recipe.Auth[i]; a.Type == "hmac" {
			secret, _ := renderString(a.Secret, e)
			m := hmac.New(hmacHashes[a.Algorithm], []byte(secret))
			m.Write(body)
			sum := m.Sum(nil)
			sig := hex.EncodeToString(sum)
			if a.Digest == "base64" {
				sig = base64.StdEncoding.EncodeToString(sum)
			}
			h.Set(a.Header, a.Prefix+sig)
		}
	}
	return processor.Call{What: q.What, Method: q.Method, Path: path, Header: h, Body: body}, token, nil
}

// bearer returns an access token valid for a while yet (see
// processor.OAuthTokens.Bearer), asked for as the recipe's scheme a says.
func (c *Connector) bearer(ctx context.Context, a *Auth, e env, stale string) (string, error) {
	return c.oauth.Bearer(ctx, c.client, stale, func() processor.Call {
		val := func(s string) string { v, _ := renderString(s, e); return v }
		fields := [][2]string{{"grant_type", "client_credentials"}}
		h := http.Header{}
		if a.ClientAuth == "basic" {
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(val(a.ClientID))+":"+url.QueryEscape(val(a.ClientSecret)))))
		} else {
			fields = append(fields, [2]string{"client_id", val(a.ClientID)}, [2]string{"client_secret", val(a.ClientSecret)})
		}
		if a.Scope != "" {
			fields = append(fields, [2]string{"scope", val(a.Scope)})
		}
		if a.Audience != "" {
			fields = append(fields, [2]string{"audience", val(a.Audience)})
		}
		for _, k := range sortedStringKeys(a.Params) {
			fields = append(fields, [2]string{k, val(a.Params[k])})
		}
		var body []byte
		if a.Encoding == "json" {
			body, _ = (&bodyTemplate{obj: []bodyField{}}).render(e, fields)
			h.Set("Content-Type", "application/json")
		} else {
			f := url.Values{}
			for _, kv := range fields {
				f.Set(kv[0], kv[1])
			}
			body = []byte(f.Encode())
			h.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return processor.Call{Method: http.MethodPost, Path: a.TokenPath, Header: h, Body: body}
	})
}

// checkToken gets a token at start: wrong credentials stop lethe.
func (c *Connector) checkToken(ctx context.Context) error {
	for i := range c.recipe.Auth {
		if a := &c.recipe.Auth[i]; a.Type == "oauth2" {
			_, err := c.bearer(ctx, a, c.base, "")
			return err
		}
	}
	return nil
}

func sortedStringKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
