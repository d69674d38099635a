package httprecipe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/internal/pacing"
	"github.com/lethe-privacy/lethe/connector/processor"
)

// Kind is the connector kind of recipe targets.
const Kind = "http"

// Options configure an http target (see docs/recipes.md).
type Options struct {
	// Recipe names a built-in recipe or the path of a recipe file.
	// Required.
	Recipe string `yaml:"recipe"`
	// Settings give the recipe's settings: credentials as ${VAR}, account
	// names. Unknown names are errors.
	Settings map[string]string `yaml:"settings"`
	// BaseURL overrides the recipe's (a region, a tenant's domain).
	BaseURL string `yaml:"base_url"`
	// Identities narrows the identity types sent to the vendor; default
	// every type the recipe maps.
	Identities []lethe.IdentityType `yaml:"identities"`
	// BatchSize lowers the recipe's keys per call; default the recipe's.
	BatchSize int `yaml:"batch_size"`
	// As for processor targets: per-call timeout, call budget, calls in
	// flight, status polling, the vendor's deadline, hosts allowed to be
	// non-public. Defaults: the recipe's, then the processor connector's.
	Timeout        time.Duration  `yaml:"timeout"`
	RateLimit      processor.Rate `yaml:"rate_limit"`
	MaxConcurrency int            `yaml:"max_concurrency"`
	PollInterval   time.Duration  `yaml:"poll_interval"`
	PollMax        time.Duration  `yaml:"poll_max"`
	ConfirmWithin  time.Duration  `yaml:"confirm_within"`
	AllowHosts     []string       `yaml:"allow_hosts"`
}

// Connector runs one recipe for one target.
type Connector struct {
	name    string
	recipe  *Recipe
	client  *processor.Client
	oauth   *processor.OAuthTokens // nil without an oauth2 scheme
	base    env                    // settings, for every template
	allowed map[lethe.IdentityType]bool
	batch   int
	o       processor.Options
	now     func() time.Time
}

var (
	_ connector.Connector = (*Connector)(nil)
	_ connector.Deadliner = (*Connector)(nil)
	_ connector.Validator = (*Connector)(nil)
	_ connector.Closer    = (*Connector)(nil)
)

// Info returns the registry entry for http targets.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(_ context.Context, t connector.Target) (connector.Connector, error) {
		var o Options
		if err := t.DecodeOptions(&o); err != nil {
			return nil, err
		}
		return Open(t.Name, o)
	}}
}

// Open loads o.Recipe and returns the connector. It does not call the
// vendor.
func Open(name string, o Options) (*Connector, error) {
	return OpenAt(name, o, time.Now)
}

// OpenAt is Open with a clock: tokens, blocks and budgets last minutes, and
// tests must cross them without sleeping.
func OpenAt(name string, o Options, now func() time.Time) (*Connector, error) {
	r, err := Load(o.Recipe)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	return New(name, r, o, now)
}

// New returns the connector for a recipe already loaded.
func New(name string, r *Recipe, o Options, now func() time.Time) (*Connector, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	strs := map[string]string{}
	for k, s := range r.Settings {
		v, ok := o.Settings[k]
		switch {
		case ok && v != "":
			strs["settings."+k] = v
		case s.Default != nil && !s.Secret:
			strs["settings."+k] = *s.Default
		default:
			bad("settings.%s is required by recipe %s", k, r.Name)
		}
	}
	for k := range o.Settings {
		if _, ok := r.Settings[k]; !ok {
			bad("settings.%s is not a setting of recipe %s (its settings: %s)", k, r.Name, strings.Join(sortedSettingNames(r), ", "))
		}
	}
	allowed := map[lethe.IdentityType]bool{}
	types := o.Identities
	if len(types) == 0 {
		for t := range r.Identities {
			types = append(types, t)
		}
	}
	for _, t := range types {
		if _, ok := r.Identities[t]; !ok {
			bad("identities: recipe %s does not take %q", r.Name, t)
			continue
		}
		allowed[t] = true
	}
	batch := r.Erase.Batch
	if o.BatchSize != 0 {
		if o.BatchSize < 1 || o.BatchSize > r.Erase.Batch {
			bad("batch_size must be 1..%d (the recipe's batch)", r.Erase.Batch)
		}
		batch = o.BatchSize
	}
	po := processor.Options{
		BaseURL:        o.BaseURL,
		Identities:     types,
		Timeout:        o.Timeout,
		RateLimit:      o.RateLimit,
		MaxConcurrency: o.MaxConcurrency,
		PollInterval:   o.PollInterval,
		PollMax:        o.PollMax,
		ConfirmWithin:  o.ConfirmWithin,
		AllowHosts:     o.AllowHosts,
	}
	if po.BaseURL == "" {
		po.BaseURL = r.BaseURL
	}
	if po.PollInterval == 0 {
		po.PollInterval = r.Defaults.PollInterval
	}
	if po.PollMax == 0 && r.Defaults.PollMax >= po.PollInterval {
		po.PollMax = r.Defaults.PollMax
	}
	def := processor.Defaults{RateLimit: r.Defaults.RateLimit, Block: r.Defaults.Block}
	client, err := processor.NewClient(name, &po, def, now)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	c := &Connector{
		name: name, recipe: r, client: client, base: env{strs: strs},
		allowed: allowed, batch: batch, o: po, now: now,
	}
	for _, a := range r.Auth {
		if a.Type == "oauth2" {
			c.oauth = processor.NewOAuthTokens(now)
		}
	}
	return c, nil
}

func sortedSettingNames(r *Recipe) []string {
	out := make([]string, 0, len(r.Settings))
	for k := range r.Settings {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Validate implements connector.Validator: with OAuth2 it gets a token, so
// wrong credentials stop lethe's start; a vendor that is down or throttling
// does not (its tasks wait).
func (c *Connector) Validate(ctx context.Context) error {
	if err := c.checkToken(ctx); err != nil && (connector.IsPermanent(err) || ctx.Err() != nil) {
		return err
	}
	return nil
}

// Close implements connector.Closer.
func (c *Connector) Close() error {
	c.client.CloseIdleConnections()
	return nil
}

// ConfirmWithin implements connector.Deadliner.
func (c *Connector) ConfirmWithin() time.Duration { return c.o.ConfirmWithin }

// Recipe returns the connector's recipe.
func (c *Connector) Recipe() *Recipe { return c.recipe }

// ---- keys and units --------------------------------------------------------

// identities returns the subject's identities this vendor may receive
// (processor.AllowedIdentities).
func (c *Connector) identities(s connector.Subject) []lethe.Identity {
	return processor.AllowedIdentities(s, c.allowed)
}

// keys turns identities into what erase calls name: the identity itself,
// or the vendor's records a lookup finds for it. found holds the vendor ids
// as identities, so errors are redacted against them too.
func (c *Connector) keys(ctx context.Context, ids []lethe.Identity) (keys []key, found []lethe.Identity, err error) {
	l := c.recipe.Lookup
	seen := map[key]bool{}
	add := func(k key) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, id := range ids {
		as := c.recipe.Identities[id.Type]
		if l == nil || !containsType(l.Identities, id.Type) {
			add(key{Type: string(id.Type), As: as, Value: id.Value})
			continue
		}
		vals, err := c.lookup(ctx, id, as, ids)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vals {
			add(key{Type: l.As, As: l.As, Value: v})
			found = append(found, lethe.Identity{Type: lethe.IdentityUserID, Value: v})
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].As != keys[j].As {
			return keys[i].As < keys[j].As
		}
		return keys[i].Value < keys[j].Value
	})
	return keys, found, nil
}

func containsType(ts []lethe.IdentityType, t lethe.IdentityType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// lookup reads every page of the lookup for one identity and returns the
// ids of the records found.
func (c *Connector) lookup(ctx context.Context, id lethe.Identity, as string, ids []lethe.Identity) ([]string, error) {
	l := c.recipe.Lookup
	p := l.Paginate
	maxPages := 1
	if p != nil {
		maxPages = p.MaxPages
	}
	var out []string
	cursor := ""
	q := l.Request
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, c.client.Errorf("%s answered more than %d pages; raise lookup.paginate.max_pages", q.What, maxPages)
		}
		n := page
		if p != nil && p.Type == "offset" {
			n = p.Start + page*p.Step
		}
		e := c.base.with("value", id.Value, "as", as, "type", string(id.Type), "page", strconv.Itoa(n), "cursor", cursor)
		a, err := c.call(ctx, &q, e, ids)
		if err != nil {
			return nil, err
		}
		if a.unknown {
			return out, nil
		}
		recs := evalPath(l.Records, a.doc)
		for _, rec := range recs {
			v := evalPath(l.ID, rec)
			s, ok := "", false
			if len(v) > 0 {
				s, ok = scalar(v[0])
			}
			if !ok || s == "" {
				return nil, c.client.Errorf("%s answered a record without an id at %s", q.What, l.ID)
			}
			out = append(out, s)
		}
		if p == nil {
			return out, nil
		}
		switch p.Type {
		case "offset":
			if len(recs) < p.Size {
				return out, nil
			}
		case "cursor":
			next := evalPath(p.Next, a.doc)
			s := ""
			if len(next) > 0 {
				s, _ = scalar(next[0])
			}
			if s == "" || s == cursor {
				return out, nil
			}
			cursor = s
		case "link":
			next, ok, err := c.nextLink(a.header.Values("Link"))
			if err != nil {
				return nil, err
			}
			if !ok {
				return out, nil
			}
			q = l.Request
			q.Path = next
			q.literal = true
		}
	}
}

// nextLink finds rel="next" in Link headers (RFC 8288) and returns it as a
// path under the base URL. A link elsewhere is an error: identities must
// not follow a vendor's answer to another host.
func (c *Connector) nextLink(headers []string) (string, bool, error) {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			isNext := false
			for _, prm := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(prm), "=")
				if strings.EqualFold(k, "rel") && strings.Contains(" "+strings.Trim(v, `"`)+" ", " next ") {
					isNext = true
				}
			}
			if !isNext {
				continue
			}
			raw := target[1 : len(target)-1]
			base := strings.TrimRight(c.o.BaseURL, "/")
			u, err := url.Parse(raw)
			if err != nil {
				return "", false, c.client.Errorf("lookup answered a next link that is not a URL")
			}
			if !u.IsAbs() {
				bu, _ := url.Parse(base)
				u = bu.ResolveReference(u)
			}
			abs := u.String()
			if !strings.HasPrefix(abs, base+"/") && !strings.HasPrefix(abs, base+"?") {
				return "", false, connector.Permanent(c.client.Errorf("lookup answered a next link outside the base URL; lethe does not follow it"))
			}
			return abs[len(base):], true, nil
		}
	}
	return "", false, nil
}

// unit is one erase batch: keys one call (or one series of steps) names.
type unit struct {
	id   string // digest, stable for the request
	keys []key
}

// units groups keys into batches: one kind per batch unless the recipe
// mixes them, at most the batch size each. Keys come sorted, so the same
// keys form the same units on every call of a task.
func (c *Connector) units(requestID string, keys []key) []unit {
	var out []unit
	var cur []key
	flush := func() {
		if len(cur) > 0 {
			out = append(out, unit{id: unitDigest(requestID, cur), keys: cur})
			cur = nil
		}
	}
	for _, k := range keys {
		if len(cur) == c.batch || (len(cur) > 0 && !c.recipe.Erase.Mix && cur[0].As != k.As) {
			flush()
		}
		cur = append(cur, k)
	}
	flush()
	return out
}

// unitDigest names a batch inside one request's checkpoint without holding
// its values.
func unitDigest(requestID string, keys []key) string {
	h := sha256.New()
	h.Write([]byte(requestID))
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k.As + "\x00" + k.Value))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// unitUUID is a UUID (version 8, name-based) for a batch: an id the vendor
// keeps (OpenDSR's subject_request_id) that is the same when a batch is
// submitted again after a crash, so the vendor can recognise the repeat.
func unitUUID(requestID, unitID string) string {
	h := sha256.Sum256([]byte("lethe-unit\x00" + requestID + "\x00" + unitID))
	b := h[:16]
	b[6] = (b[6] & 0x0f) | 0x80
	b[8] = (b[8] & 0x3f) | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func (c *Connector) unitEnv(s connector.Subject, u unit) env {
	vals := make([]string, len(u.keys))
	for i, k := range u.keys {
		vals[i] = k.Value
	}
	e := c.base.with("request_id", s.RequestID, "now", c.now().UTC().Format(time.RFC3339),
		"as", u.keys[0].As, "type", u.keys[0].Type, "value", u.keys[0].Value, "unit_id", unitUUID(s.RequestID, u.id))
	e.list = vals
	e.keys = u.keys
	return e
}

// present returns the keys the vendor still holds, by the recipe's verify
// calls.
func (c *Connector) present(ctx context.Context, keys []key, ids []lethe.Identity) ([]key, error) {
	vf := c.recipe.Verify
	var out []key
	for i := 0; i < len(keys); i += vf.Batch {
		batch := keys[i:min(i+vf.Batch, len(keys))]
		// A verify batch holds one kind, like an erase batch.
		for _, group := range byKind(batch) {
			vals := make([]string, len(group))
			for j, k := range group {
				vals[j] = k.Value
			}
			e := c.base.with("value", group[0].Value, "as", group[0].As, "type", group[0].Type)
			e.list = vals
			a, err := c.call(ctx, &vf.Request, e, ids)
			if err != nil {
				return nil, err
			}
			if a.unknown {
				continue
			}
			got := evalPath(vf.Present, a.doc)
			if vf.Batch == 1 {
				if len(got) > 0 && got[0] != nil {
					out = append(out, group[0])
				}
				continue
			}
			has := map[string]bool{}
			for _, g := range got {
				if s, ok := scalar(g); ok {
					has[s] = true
				}
			}
			for _, k := range group {
				if has[k.Value] {
					out = append(out, k)
				}
			}
		}
	}
	return out, nil
}

func byKind(keys []key) [][]key {
	var out [][]key
	for _, k := range keys {
		if n := len(out); n > 0 && out[n-1][0].As == k.As {
			out[n-1] = append(out[n-1], k)
			continue
		}
		out = append(out, []key{k})
	}
	return out
}

// ---- connector.Connector ---------------------------------------------------

// Resolve implements connector.Connector: a vendor's ids are its own, and
// nothing lethe could use elsewhere.
func (c *Connector) Resolve(ctx context.Context, _ connector.Subject) ([]lethe.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.client.Errorf("resolve: %w", err)
	}
	return nil, nil
}

func (c *Connector) report(n int, refs []string) lethe.Report {
	it := lethe.ReportItem{Object: c.recipe.Object, Action: c.recipe.Action, Rows: int64(n), Reference: strings.Join(refs, ",")}
	if c.recipe.Status == nil && c.recipe.Verify == nil && c.recipe.Lookup == nil {
		it.Reason = "accepted by the vendor; its completion cannot be observed"
	}
	return lethe.Report{Items: []lethe.ReportItem{it}}
}

// Plan implements connector.Connector: the keys Erase would submit. With a
// lookup or verify calls the vendor is asked (reads only), so what it no
// longer holds is not counted; otherwise every key not yet submitted by
// this task is.
func (c *Connector) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.client.Errorf("plan: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 {
		return lethe.Report{}, nil
	}
	keys, found, err := c.keys(ctx, ids)
	if err != nil {
		return lethe.Report{}, plain(c.client, err)
	}
	cp := decodeCheckpoint(s.Checkpoint)
	n := 0
	for _, u := range c.units(s.RequestID, keys) {
		if _, ok := cp.Units[u.id]; ok {
			continue
		}
		if c.recipe.Verify != nil {
			p, err := c.present(ctx, u.keys, append(ids, found...))
			if err != nil {
				return lethe.Report{}, plain(c.client, err)
			}
			n += len(p)
			continue
		}
		n += len(u.keys)
	}
	return c.report(n, nil), nil
}

// Erase implements connector.Connector. Each call:
//
//  1. finds the keys (looking the vendor's records up where the recipe
//     says so) and groups them into batches;
//  2. for each batch not in the checkpoint: drops keys the verify calls
//     say the vendor no longer holds, runs the erase steps, records the
//     batch and its captures (the vendor's job id) in the checkpoint, and
//     counts its keys; a batch interrupted between steps keeps its keys in
//     the checkpoint, since the first step may make them unfindable;
//  3. with a status call, asks how every submitted batch stands: done,
//     pending (the task waits, polling with backoff), failed or partial
//     (the task fails: a human must look).
//
// A throttled call is Pending with the checkpoint, never done and never a
// failed attempt; an error after some batch was submitted is Pending too,
// so the checkpoint keeps it.
func (c *Connector) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.client.Errorf("erase: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 {
		return lethe.Report{}, nil // nothing this vendor may receive
	}
	cp := decodeCheckpoint(s.Checkpoint)
	rows, progressed := 0, false
	var refs []string
	fail := func(err error) (lethe.Report, error) {
		return c.report(rows, refs), c.pendingOr(err, cp, progressed)
	}
	keys, found, err := c.keys(ctx, ids)
	if err != nil {
		return fail(err)
	}
	redactIDs := append(ids, found...)
	units := c.units(s.RequestID, keys)
	// Batches cut off between steps come back from the checkpoint.
	formed := map[string]bool{}
	for _, u := range units {
		formed[u.id] = true
	}
	for _, id := range cp.sortedUnits() {
		if st := cp.Units[id]; !formed[id] && len(st.Held) > 0 {
			units = append(units, unit{id: id, keys: st.Held})
			for _, k := range st.Held {
				redactIDs = append(redactIDs, lethe.Identity{Type: lethe.IdentityUserID, Value: k.Value})
			}
		}
	}
	steps := c.recipe.Erase.Steps
	for _, u := range units {
		st := cp.Units[u.id]
		if st == nil {
			if c.recipe.Verify != nil {
				p, err := c.present(ctx, u.keys, redactIDs)
				if err != nil {
					return fail(err)
				}
				if len(p) == 0 {
					cp.Units[u.id] = &unitState{Step: len(steps), Done: true}
					continue
				}
				u.keys = p
			}
			st = &unitState{}
			cp.Units[u.id] = st
		}
		if st.Done || st.Step >= len(steps) {
			continue
		}
		e := c.unitEnv(s, u)
		for k, v := range st.Vars {
			e.strs[k] = v
		}
		for st.Step < len(steps) {
			a, err := c.call(ctx, &steps[st.Step], e, redactIDs)
			if err != nil {
				if st.Step > 0 {
					st.Held = u.keys
					progressed = true
				} else if len(st.Vars) == 0 {
					delete(cp.Units, u.id) // nothing happened: submit again next time
				}
				return fail(err)
			}
			if a.unknown {
				// The vendor does not know these records (or a later
				// step finds them gone already): nothing left to do.
				if st.Step > 0 {
					rows += len(u.keys)
				}
				st.Step, st.Done, st.Held = len(steps), true, nil
				progressed = true
				break
			}
			for name, path := range steps[st.Step].Capture {
				v := evalPath(path, a.doc)
				val := ""
				if len(v) > 0 {
					val, _ = scalar(v[0])
				}
				if val == "" || len(val) > 256 {
					if st.Step > 0 {
						st.Held = u.keys
					}
					return fail(c.client.Errorf("%s answered %d without %s at %s", steps[st.Step].What, a.status, name, path))
				}
				if st.Vars == nil {
					st.Vars = map[string]string{}
				}
				st.Vars[name] = val
				e.strs[name] = val
			}
			st.Step++
			progressed = true
			if st.Step == len(steps) {
				rows += len(u.keys)
				st.Held = nil
				if ev := c.recipe.evidence; ev != "" {
					refs = append(refs, st.Vars[ev])
				}
				if c.recipe.Status == nil {
					st.Done = true
				}
			}
		}
	}

	waiting := 0
	if sc := c.recipe.Status; sc != nil {
		byID := map[string]unit{}
		for _, u := range units {
			byID[u.id] = u
		}
		for _, id := range cp.sortedUnits() {
			st := cp.Units[id]
			if st.Done || st.Step < len(steps) {
				continue
			}
			e := c.base.with("request_id", s.RequestID)
			if u, ok := byID[id]; ok {
				e = c.unitEnv(s, u)
			}
			for k, v := range st.Vars {
				e.strs[k] = v
			}
			a, err := c.call(ctx, &sc.Request, e, redactIDs)
			if err != nil {
				progressed = progressed || rows > 0
				return fail(err)
			}
			raw := ""
			if v := evalPath(sc.Value, a.doc); len(v) > 0 {
				raw, _ = scalar(v[0])
			}
			out, ok := sc.Map[raw]
			if !ok {
				out = sc.Default
				raw = "an unmapped value" // the vendor's text is not shown
			}
			ref := ""
			if ev := c.recipe.evidence; ev != "" {
				ref = " (vendor reference " + st.Vars[ev] + ")"
			}
			switch out {
			case outDone:
				st.Done = true
			case outPending:
				waiting++
			case outFailed:
				return c.report(rows, refs), connector.Permanent(c.client.Errorf("the vendor reports the deletion failed: status %s%s; ask the vendor before retrying", raw, ref))
			case outPartial:
				return c.report(rows, refs), connector.Permanent(c.client.Errorf("the vendor reports the deletion only partly done: status %s%s; ask the vendor what is left", raw, ref))
			}
		}
	}
	if waiting > 0 {
		after := pacing.Backoff(c.o.PollInterval, c.o.PollMax, cp.Polls)
		cp.Polls++
		return c.report(rows, refs), &connector.PendingError{
			After:      after,
			Checkpoint: cp.encode(),
			Reason:     fmt.Sprintf("submitted; waiting for the vendor to complete %d deletion jobs", waiting),
		}
	}
	return c.report(rows, refs), nil
}

// pendingOr turns a throttled call into Pending with the checkpoint, and
// any other error after progress into Pending too (keeping what was done);
// otherwise the error stands.
func (c *Connector) pendingOr(err error, cp checkpoint, progressed bool) error {
	var th *processor.ThrottledError
	if errors.As(err, &th) {
		return &connector.PendingError{After: th.After, Checkpoint: cp.encode(), Reason: th.Reason}
	}
	if progressed && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !connector.IsPermanent(err) {
		return &connector.PendingError{After: c.o.PollInterval, Checkpoint: cp.encode(), Reason: fmt.Sprintf("made progress, then: %v", err)}
	}
	return err
}

// plain is for Plan and Verify, which have no pending answer: throttling is
// a retryable error there.
func plain(cl *processor.Client, err error) error {
	var th *processor.ThrottledError
	if errors.As(err, &th) {
		return cl.Errorf("%s", th.Error())
	}
	return err
}

// Verify implements connector.Connector. With a lookup the vendor must find
// no record any more; with verify calls it must hold no key. Without either
// lethe cannot observe the vendor after it accepted (or completed) the
// deletion: Verify passes, and the report says so.
func (c *Connector) Verify(ctx context.Context, s connector.Subject) error {
	if err := ctx.Err(); err != nil {
		return c.client.Errorf("verify: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 || (c.recipe.Lookup == nil && c.recipe.Verify == nil) {
		return nil
	}
	keys, found, err := c.keys(ctx, ids)
	if err != nil {
		return plain(c.client, err)
	}
	if l := c.recipe.Lookup; l != nil {
		// Only the records a lookup finds can be checked again.
		var left []key
		for _, k := range keys {
			if k.Type == l.As {
				left = append(left, k)
			}
		}
		keys = left
	} else {
		keys, err = c.present(ctx, keys, append(ids, found...))
		if err != nil {
			return plain(c.client, err)
		}
	}
	if len(keys) > 0 {
		return c.client.Errorf("the vendor still holds %d of the subject's records", len(keys))
	}
	return nil
}
