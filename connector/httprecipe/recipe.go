package httprecipe

import (
	"embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/internal/config"
)

// builtin holds the recipes shipped with lethe; a target names one by its
// file name without ".yaml".
//
//go:embed recipes/*.yaml
var builtin embed.FS

// Recipe is one vendor's deletion API, as a file describes it (see
// docs/recipes.md for the format).
type Recipe struct {
	// Format is the recipe format's version; 1.
	Format int `yaml:"format"`
	// Name identifies the recipe; [a-z0-9_-]+.
	Name string `yaml:"name"`
	// Docs are the vendor's pages the recipe was written from.
	Docs []string `yaml:"docs"`
	// BaseURL is where the vendor's API lives; a target may override it.
	BaseURL string `yaml:"base_url"`
	// Object and Action name the report line ("contacts", delete).
	Object string       `yaml:"object"`
	Action lethe.Action `yaml:"action"`
	// Settings are the values a target gives (credentials, account
	// names), used in templates as {{settings.NAME}}.
	Settings map[string]Setting `yaml:"settings"`
	// Identities maps each identity type the vendor takes to the vendor's
	// name for it ({{as}} in templates).
	Identities map[lethe.IdentityType]string `yaml:"identities"`
	Defaults   RecipeDefaults                `yaml:"defaults"`
	Auth       []Auth                        `yaml:"auth"`
	// Errors says where the vendor's answers hold an error message.
	Errors ErrorShape `yaml:"errors"`
	Lookup *Lookup    `yaml:"lookup"`
	Erase  Erase      `yaml:"erase"`
	Status *Status    `yaml:"status"`
	Verify *Verify    `yaml:"verify"`

	lines    map[string]int
	evidence string // the capture reported as the vendor's reference
}

// Setting is one value a target gives.
type Setting struct {
	// Secret marks a credential: it never appears in errors, and a
	// target must give it (as ${VAR}, so it is not in the file).
	Secret bool `yaml:"secret"`
	// Default applies when the target leaves the setting out; without one
	// the setting is required.
	Default *string `yaml:"default"`
}

// RecipeDefaults are the recipe's defaults for the target's options.
type RecipeDefaults struct {
	RateLimit    processor.Rate `yaml:"rate_limit"`
	Block        time.Duration  `yaml:"block"`
	PollInterval time.Duration  `yaml:"poll_interval"`
	PollMax      time.Duration  `yaml:"poll_max"`
}

// Auth is one authentication scheme; a recipe may combine several (an API
// key header and a body signature).
type Auth struct {
	// Type is bearer, basic, header, query, body, oauth2 or hmac.
	Type string `yaml:"type"`
	// Token (bearer), Username and Password (basic), Name and Value
	// (header, query, body).
	Token    string `yaml:"token"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	Name     string `yaml:"name"`
	Value    string `yaml:"value"`
	// OAuth2 client credentials: TokenPath (under the base URL),
	// ClientID, ClientSecret, Scope, Audience, Params (more fields of the
	// token request), Encoding ("form", the default, or "json"), and
	// ClientAuth ("body", the default, or "basic").
	TokenPath    string            `yaml:"token_path"`
	ClientID     string            `yaml:"client_id"`
	ClientSecret string            `yaml:"client_secret"`
	Scope        string            `yaml:"scope"`
	Audience     string            `yaml:"audience"`
	Params       map[string]string `yaml:"params"`
	Encoding     string            `yaml:"encoding"`
	ClientAuth   string            `yaml:"client_auth"`
	// HMAC: Header receives Prefix + the signature of the exact body
	// bytes under Secret, with Algorithm (sha256, the default, or sha1 or
	// sha512), written in Digest (hex, the default, or base64).
	Header    string `yaml:"header"`
	Prefix    string `yaml:"prefix"`
	Secret    string `yaml:"secret"`
	Algorithm string `yaml:"algorithm"`
	Digest    string `yaml:"digest"`
}

// ErrorShape says where an error answer holds the vendor's message.
type ErrorShape struct {
	Message string `yaml:"message"` // a path such as $.error.message
}

// Request is one HTTP call. Path, header values, query and body hold
// templates ({{name}}).
type Request struct {
	// What names the call in errors ("deletion endpoint").
	What   string            `yaml:"what"`
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Header map[string]string `yaml:"headers"`
	// Body is sent as JSON; Form as application/x-www-form-urlencoded.
	Body *yaml.Node        `yaml:"body"`
	Form map[string]string `yaml:"form"`
	// OK lists the statuses that mean success; default any 2xx.
	OK []int `yaml:"ok"`
	// Unknown lists the statuses that mean the vendor does not know the
	// record (404): nothing to erase there.
	Unknown []int `yaml:"unknown"`
	// Capture names values of the answer (paths such as
	// $.data.regulateId) for later templates; each must be present.
	Capture map[string]string `yaml:"capture"`

	body    *bodyTemplate
	literal bool // Path is a next link, not a template
}

// Lookup finds the vendor's own records for an identity (users by email).
type Lookup struct {
	// Identities are the identity types looked up; {{value}} is one.
	Identities []lethe.IdentityType `yaml:"identities"`
	Request    Request              `yaml:"request"`
	// Records is the path of the list of records in an answer ($[*],
	// $.users[*]); ID the path of the record's id inside one ($.user_id).
	Records string `yaml:"records"`
	ID      string `yaml:"id"`
	// As is the name of the key kind the records become ({{as}} of the
	// erase calls); default "id".
	As       string    `yaml:"as"`
	Paginate *Paginate `yaml:"paginate"`
}

// Paginate says how a lookup reaches its next page.
type Paginate struct {
	// Type is offset, cursor or link.
	Type string `yaml:"type"`
	// Offset: {{page}} counts from Start by Step; the lookup stops at a
	// page with fewer than Size records.
	Start int `yaml:"start"`
	Step  int `yaml:"step"`
	Size  int `yaml:"size"`
	// Cursor: Next is the path of the next cursor ({{cursor}}, "" on
	// the first page); an absent or empty one ends the lookup.
	Next string `yaml:"next"`
	// MaxPages bounds the pages read; default 20. More is an error, never
	// a silent stop: records past it would be left undeleted.
	MaxPages int `yaml:"max_pages"`
}

// Erase is the deletion: its calls for each batch of keys.
type Erase struct {
	// Batch is the most keys one call takes (Segment 5000, Braze 50,
	// HubSpot 1); default 1. A target's batch_size may lower it.
	Batch int `yaml:"batch"`
	// Mix lets one batch hold keys of different kinds; by default a
	// batch holds one kind ({{as}}).
	Mix bool `yaml:"mix"`
	// Steps run in order for each batch (Zendesk: delete, then
	// permanently delete).
	Steps []Request `yaml:"steps"`
	// Evidence names the capture kept as the vendor's reference.
	Evidence string `yaml:"evidence"`
}

// Status asks how a submitted batch stands.
type Status struct {
	Request Request `yaml:"request"`
	// Value is the path of the status in the answer; Map maps its values
	// to done, pending, failed or partial; Default applies to any other
	// value (default pending: the task's deadline bounds the wait).
	Value   string            `yaml:"value"`
	Map     map[string]string `yaml:"map"`
	Default string            `yaml:"default"`
}

// Verify asks whether the vendor still holds keys.
type Verify struct {
	// Batch is the most keys one call checks; default 1.
	Batch   int     `yaml:"batch"`
	Request Request `yaml:"request"`
	// Present is the path of what the answer holds for present keys:
	// with Batch 1, anything there means the key is present; with more,
	// the values there are the keys present.
	Present string `yaml:"present"`
}

// outcomes a status maps to.
const (
	outDone    = "done"
	outPending = "pending"
	outFailed  = "failed"
	outPartial = "partial"
)

var namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Builtin lists the recipes shipped with lethe.
func Builtin() []string {
	ents, _ := builtin.ReadDir("recipes")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Load returns the recipe ref names: a built-in recipe's name, or the path
// of a recipe file (it contains a "/" or ends in .yaml).
func Load(ref string) (*Recipe, error) {
	if ref == "" {
		return nil, errors.New("recipe is required: a built-in name (" + strings.Join(Builtin(), ", ") + ") or a file path")
	}
	var data []byte
	var err error
	if strings.ContainsRune(ref, '/') || strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml") {
		data, err = os.ReadFile(filepath.Clean(ref))
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", ref, err)
		}
	} else {
		data, err = builtin.ReadFile("recipes/" + ref + ".yaml")
		if err != nil {
			return nil, fmt.Errorf("recipe %q is not built in (built in: %s); give a file path for your own", ref, strings.Join(Builtin(), ", "))
		}
	}
	return Parse(data, "recipe "+ref)
}

// Parse decodes and checks a recipe. Errors are config.Errors naming the
// field and its line, all of them at once.
func Parse(data []byte, prefix string) (*Recipe, error) {
	r := &Recipe{}
	lines, err := config.DecodeFile(data, prefix, r)
	if err != nil {
		return nil, err
	}
	r.lines = lines
	if errs := r.check(prefix); len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// checker collects a recipe's problems with their lines.
type checker struct {
	prefix string
	lines  map[string]int
	errs   config.Errors
}

func (c *checker) bad(path, format string, args ...any) {
	full := c.prefix + "." + path
	line := 0
	for p := full; p != ""; {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	c.errs = append(c.errs, &config.FieldError{Path: full, Msg: fmt.Sprintf(format, args...), Line: line})
}

func (r *Recipe) check(prefix string) config.Errors {
	c := &checker{prefix: prefix, lines: r.lines}
	if r.Format != 1 {
		c.bad("format", "must be 1")
	}
	if !namePattern.MatchString(r.Name) {
		c.bad("name", "must be [a-z0-9_-]+")
	}
	if r.Object == "" {
		r.Object = r.Name
	}
	if !objectPattern.MatchString(r.Object) {
		c.bad("object", "must be 1-64 of A-Z a-z 0-9 _ . : / -")
	}
	switch r.Action {
	case "":
		r.Action = lethe.ActionDelete
	case lethe.ActionDelete, lethe.ActionForward:
	default:
		c.bad("action", "must be delete or forward")
	}
	for name, st := range r.Settings {
		if !namePattern.MatchString(name) {
			c.bad("settings."+name, "setting names must be [a-z0-9_-]+")
		}
		if st.Secret && st.Default != nil {
			c.bad("settings."+name, "a secret has no default: each target gives its own")
		}
	}
	if len(r.Identities) == 0 {
		c.bad("identities", "must map at least one identity type to the vendor's name for it")
	}
	for t, as := range r.Identities {
		if !t.Valid() {
			c.bad("identities", "%q is not an identity type", t)
		}
		if as == "" {
			c.bad("identities."+string(t), "needs the vendor's name for the type")
		}
	}
	if r.Defaults.Block < 0 || r.Defaults.PollInterval < 0 || r.Defaults.PollMax < 0 {
		c.bad("defaults", "durations must not be negative")
	}

	// Variables every template may use.
	base := vars{"request_id": true, "now": true}
	for name := range r.Settings {
		base["settings."+name] = true
	}
	r.checkAuth(c, base)

	keyKinds := map[string]bool{}
	for _, as := range r.Identities {
		keyKinds[as] = true
	}
	if l := r.Lookup; l != nil {
		if len(l.Identities) == 0 {
			c.bad("lookup.identities", "must list the identity types looked up")
		}
		for i, t := range l.Identities {
			if _, ok := r.Identities[t]; !ok {
				c.bad(fmt.Sprintf("lookup.identities[%d]", i), "%q is not in identities", t)
			}
		}
		if l.As == "" {
			l.As = "id"
		}
		keyKinds[l.As] = true
		v := base.with("value", "as", "type", "page", "cursor")
		r.checkRequest(c, "lookup.request", &l.Request, v, false)
		checkPath(c, "lookup.records", l.Records, true)
		checkPath(c, "lookup.id", l.ID, true)
		if p := l.Paginate; p != nil {
			switch p.Type {
			case "offset":
				if p.Size < 1 {
					c.bad("lookup.paginate.size", "must be the page size (records per full page)")
				}
				if p.Step == 0 {
					p.Step = 1
				}
			case "cursor":
				checkPath(c, "lookup.paginate.next", p.Next, true)
			case "link":
			default:
				c.bad("lookup.paginate.type", "must be offset, cursor or link")
			}
			if p.MaxPages == 0 {
				p.MaxPages = 20
			}
			if p.MaxPages < 1 || p.MaxPages > 1000 {
				c.bad("lookup.paginate.max_pages", "must be 1..1000")
			}
		}
	}

	e := &r.Erase
	if e.Batch == 0 {
		e.Batch = 1
	}
	if e.Batch < 1 || e.Batch > 10000 {
		c.bad("erase.batch", "must be 1..10000")
	}
	if len(e.Steps) == 0 {
		c.bad("erase.steps", "must hold at least one call")
	}
	v := base.with("value", "values", "keys", "as", "type", "unit_id")
	captured := vars{}
	for i := range e.Steps {
		r.checkRequest(c, fmt.Sprintf("erase.steps[%d]", i), &e.Steps[i], v.merge(captured), true)
		for name := range e.Steps[i].Capture {
			captured[name] = true
		}
	}
	if e.Evidence != "" && !captured[e.Evidence] {
		c.bad("erase.evidence", "names no capture of the erase steps")
	}
	r.evidence = e.Evidence
	if s := r.Status; s != nil {
		sv := base.merge(captured)
		if r.Lookup == nil {
			// Keys of identities are the same on every call, so a status
			// call may name them; a lookup's may be gone after the erase.
			sv = v.merge(captured)
		}
		if len(captured) == 0 && r.Lookup != nil {
			c.bad("status", "needs a capture of the erase steps (the vendor's job id) to ask about")
		}
		r.checkRequest(c, "status.request", &s.Request, sv, false)
		checkPath(c, "status.value", s.Value, true)
		if len(s.Map) == 0 {
			c.bad("status.map", "must map the vendor's status values to done, pending, failed or partial")
		}
		hasDone := false
		for k, o := range s.Map {
			switch o {
			case outDone:
				hasDone = true
			case outPending, outFailed, outPartial:
			default:
				c.bad("status.map."+k, "must be done, pending, failed or partial")
			}
		}
		if !hasDone {
			c.bad("status.map", "maps no value to done")
		}
		switch s.Default {
		case "":
			s.Default = outPending
		case outPending, outFailed:
		default:
			c.bad("status.default", "must be pending or failed")
		}
	}
	if vf := r.Verify; vf != nil {
		if vf.Batch == 0 {
			vf.Batch = 1
		}
		if vf.Batch < 1 || vf.Batch > 10000 {
			c.bad("verify.batch", "must be 1..10000")
		}
		r.checkRequest(c, "verify.request", &vf.Request, base.with("value", "values", "as", "type"), false)
		checkPath(c, "verify.present", vf.Present, true)
		if r.Lookup != nil {
			c.bad("verify", "a recipe with a lookup verifies by looking up again; leave verify out")
		}
	}
	checkPath(c, "errors.message", r.Errors.Message, false)
	return c.errs
}

var objectPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)

func (r *Recipe) checkAuth(c *checker, v vars) {
	seenToken := false
	for i := range r.Auth {
		a := &r.Auth[i]
		p := fmt.Sprintf("auth[%d]", i)
		need := func(field, val string) {
			if val == "" {
				c.bad(p+"."+field, "is required for %s", a.Type)
				return
			}
			checkTemplate(c, p+"."+field, val, v)
		}
		switch a.Type {
		case "bearer":
			need("token", a.Token)
		case "basic":
			need("username", a.Username)
			if a.Password != "" {
				checkTemplate(c, p+".password", a.Password, v)
			}
		case "header", "query", "body":
			need("name", a.Name)
			need("value", a.Value)
			if a.Type == "header" && !validHeaderName(a.Name) {
				c.bad(p+".name", "is not a header name")
			}
		case "oauth2":
			need("token_path", a.TokenPath)
			need("client_id", a.ClientID)
			need("client_secret", a.ClientSecret)
			for k, val := range a.Params {
				checkTemplate(c, p+".params."+k, val, v)
			}
			for f, val := range map[string]string{"scope": a.Scope, "audience": a.Audience} {
				if val != "" {
					checkTemplate(c, p+"."+f, val, v)
				}
			}
			if a.Encoding == "" {
				a.Encoding = "form"
			}
			if a.Encoding != "form" && a.Encoding != "json" {
				c.bad(p+".encoding", "must be form or json")
			}
			if a.ClientAuth == "" {
				a.ClientAuth = "body"
			}
			if a.ClientAuth != "body" && a.ClientAuth != "basic" {
				c.bad(p+".client_auth", "must be body or basic")
			}
			if seenToken {
				c.bad(p, "only one oauth2 scheme per recipe")
			}
			seenToken = true
		case "hmac":
			need("header", a.Header)
			need("secret", a.Secret)
			if a.Algorithm == "" {
				a.Algorithm = "sha256"
			}
			if _, ok := hmacHashes[a.Algorithm]; !ok {
				c.bad(p+".algorithm", "must be sha256, sha1 or sha512")
			}
			if a.Digest == "" {
				a.Digest = "hex"
			}
			if a.Digest != "hex" && a.Digest != "base64" {
				c.bad(p+".digest", "must be hex or base64")
			}
			if !validHeaderName(a.Header) {
				c.bad(p+".header", "is not a header name")
			}
		default:
			c.bad(p+".type", "must be bearer, basic, header, query, body, oauth2 or hmac")
		}
	}
}

func validHeaderName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) < 0
}

// checkRequest checks one call's templates against the variables v it can
// use, and parses its body.
func (r *Recipe) checkRequest(c *checker, p string, q *Request, v vars, erase bool) {
	if q.Method == "" {
		q.Method = http.MethodPost
		if q.Body == nil && q.Form == nil {
			q.Method = http.MethodGet
		}
	}
	q.Method = strings.ToUpper(q.Method)
	if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, q.Method) {
		c.bad(p+".method", "must be GET, POST, PUT, PATCH or DELETE")
	}
	if !strings.HasPrefix(q.Path, "/") {
		c.bad(p+".path", "must start with / (it is appended to the base URL)")
	}
	checkTemplate(c, p+".path", q.Path, v)
	for k, val := range q.Header {
		if !validHeaderName(k) {
			c.bad(p+".headers", "%q is not a header name", k)
		}
		checkTemplate(c, p+".headers."+k, val, v)
	}
	for k, val := range q.Form {
		checkTemplate(c, p+".form."+k, val, v)
	}
	if q.Body != nil && q.Form != nil {
		c.bad(p, "has both body and form")
	}
	if q.Body != nil {
		bt, errs := parseBody(q.Body, v)
		for _, e := range errs {
			c.errs = append(c.errs, &config.FieldError{Path: c.prefix + "." + p + ".body", Msg: e.msg, Line: e.line})
		}
		q.body = bt
	}
	for _, s := range append(append([]int(nil), q.OK...), q.Unknown...) {
		if s < 100 || s > 599 {
			c.bad(p, "status %d is not an HTTP status", s)
		}
	}
	for name, path := range q.Capture {
		if !namePattern.MatchString(name) || strings.Contains(name, ".") {
			c.bad(p+".capture", "capture names must be [a-z0-9_-]+")
		}
		checkPath(c, p+".capture."+name, path, true)
	}

	if len(q.Unknown) > 0 && !erase && p != "verify.request" && p != "lookup.request" {
		c.bad(p+".unknown", "only erase steps, lookups and verify calls can answer unknown")
	}
	if q.What == "" {
		q.What = strings.ReplaceAll(strings.SplitN(p, ".", 2)[0], "_", " ") + " endpoint"
	}
}

func checkPath(c *checker, p, path string, required bool) {
	if path == "" {
		if required {
			c.bad(p, "is required")
		}
		return
	}
	if _, err := compilePath(path); err != nil {
		c.bad(p, "%v", err)
	}
}

func checkTemplate(c *checker, p, s string, v vars) {
	t, err := parseTemplate(s)
	if err != nil {
		c.bad(p, "%v", err)
		return
	}
	for _, name := range t.names() {
		switch {
		case name == "keys":
			c.bad(p, "{{keys}} is only for a body's $each")
		case !v[name]:
			c.bad(p, "unknown variable {{%s}} here (known: %s)", name, v.list())
		}
	}
}

// vars is the set of variable names a template may use.
type vars map[string]bool

func (v vars) with(names ...string) vars {
	out := vars{}
	for k := range v {
		out[k] = true
	}
	for _, n := range names {
		out[n] = true
	}
	return out
}

func (v vars) merge(o vars) vars {
	out := v.with()
	for k := range o {
		out[k] = true
	}
	return out
}

func (v vars) list() string {
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
