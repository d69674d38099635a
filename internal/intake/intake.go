// Package intake accepts deletion requests for every API profile (native,
// connect, s2s): it normalises identities, answers duplicates and retries
// with the first request, and persists the request together with its first
// pipeline job and audit event in one transaction, so an accepted request
// can never be lost or half-stored.
package intake

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nyaruka/phonenumbers"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
	"github.com/lethe-privacy/lethe/redact"
)

// Limits on a submission; each keeps one request's footprint bounded.
const (
	MaxIdentities     = 32
	MaxExternalIDLen  = 256
	MaxIdempotencyLen = 255
	MaxCallbackURLLen = 2048
)

// Enqueuer inserts a request's first pipeline job inside the transaction
// that stores the request.
type Enqueuer interface {
	EnqueueResolve(ctx context.Context, tx store.Tx, requestID string) error
}

// ManyEnqueuer is an Enqueuer that can insert the first jobs of several
// requests in one statement: a group commit (batch.go) then pays for one
// job insert, not one per request (the pipeline's queue is one).
type ManyEnqueuer interface {
	Enqueuer
	EnqueueResolves(ctx context.Context, tx store.Tx, requestIDs []string) error
}

// auditBatch is a transaction that appends several events in one
// statement (the SQL stores' is).
type auditBatch interface {
	AppendAudits(ctx context.Context, events ...*lethe.AuditEvent) error
}

// Terminator ends a request the way every request ends (terminate.Path):
// the pipeline's also stores the status event.
type Terminator interface {
	Terminate(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, e terminate.Ending) (bool, error)
}

// Service accepts and cancels requests.
type Service struct {
	store     store.Store
	queue     Enqueuer
	keys      *seal.Keyring
	deadlines map[lethe.Regulation]time.Duration
	now       func() time.Time
	end       Terminator
	callbacks netguard.CallbackURLs
	batch     *batcher
}

// Config configures a Service.
type Config struct {
	// Deadlines maps each accepted regulation to its response period.
	// Default: lethe.DefaultDeadlines. Only regulations listed here are
	// accepted.
	Deadlines map[lethe.Regulation]time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Terminator ends canceled requests; give the pipeline, so that the
	// cancel reaches the request's callback_url. Default: terminate.Path
	// with Signer, which sends no status event.
	Terminator Terminator
	// Signer signs the receipt of a canceled request when Terminator is
	// nil; nil issues none. Either way a cancel drops the identities'
	// values.
	// CallbackURLs is what a callback_url may name. Default: https to
	// public addresses, any host.
	CallbackURLs netguard.CallbackURLs
	Signer       *audit.Signer
	// MaxBatch is how many submissions arriving together may be stored in
	// one transaction (see batch.go). Default DefaultMaxBatch; 1 stores
	// each in its own.
	MaxBatch int
}

// New returns a Service.
func New(st store.Store, q Enqueuer, keys *seal.Keyring, cfg Config) *Service {
	if cfg.Deadlines == nil {
		cfg.Deadlines = lethe.DefaultDeadlines
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Terminator == nil {
		cfg.Terminator = terminate.Path{Signer: cfg.Signer}
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	leaders := DefaultBatchesPostgres
	if st.Dialect() == "sqlite" {
		leaders = 1
	}
	return &Service{store: st, queue: q, keys: keys, deadlines: cfg.Deadlines, now: cfg.Now, end: cfg.Terminator, callbacks: cfg.CallbackURLs, batch: &batcher{max: cfg.MaxBatch, leaders: leaders}}
}

// Submission is one request as a profile received it.
type Submission struct {
	Actor          lethe.Actor // ActorAdmin or ActorClient
	ClientID       string      // "" for the admin
	Identities     []lethe.Identity
	Regulation     lethe.Regulation
	ExternalID     string
	IdempotencyKey string
	CallbackURL    string
	// CallbackFormat names the protocol of the request's status
	// callbacks: "" for lethe's own, or the intake profile's (see
	// lethe.Request.CallbackFormat).
	CallbackFormat string
}

// Outcome says how Submit answered.
type Outcome int

const (
	// Created: a new request was stored and queued.
	Created Outcome = iota
	// Duplicate: the client already has an open request for this subject;
	// that request is returned and nothing is stored.
	Duplicate
	// Replayed: the idempotency key was seen before; the first answer's
	// request is returned and nothing is stored.
	Replayed
)

// Submit validates sub and creates its request, or returns the request that
// already stands for it.
func (s *Service) Submit(ctx context.Context, sub Submission) (*lethe.Request, Outcome, error) {
	r, err := s.build(sub)
	if err != nil {
		return nil, 0, err
	}
	if s.batch.max > 1 {
		return s.submitBatched(ctx, r)
	}
	return s.submitAlone(ctx, r)
}

// submitAlone stores r in a transaction of its own.
func (s *Service) submitAlone(ctx context.Context, r *lethe.Request) (*lethe.Request, Outcome, error) {
	for attempt := 0; ; attempt++ {
		got, outcome, err := s.submitOnce(ctx, r)
		// A conflict means a concurrent submission won the unique index
		// (same idempotency key, or same open subject); the second pass
		// finds and returns its request.
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue
		}
		return got, outcome, err
	}
}

func (s *Service) submitOnce(ctx context.Context, r *lethe.Request) (*lethe.Request, Outcome, error) {
	var (
		got     *lethe.Request
		outcome Outcome
	)
	err := s.store.InTx(ctx, func(tx store.Tx) error {
		var (
			err error
			ev  *lethe.AuditEvent
		)
		got, outcome, ev, err = s.storeIn(ctx, tx, r)
		if err != nil || ev == nil {
			return err
		}
		_, err = s.admit(ctx, tx, []*lethe.AuditEvent{ev})
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return got, outcome, nil
}

// storeIn stores r in tx, or finds the request that already stands for
// it. For a request it created it returns the request's received event,
// which the caller appends, with the request's first job, through admit
// before tx commits (a batch does so once for all its requests). A
// *lethe.Error is the submission's answer and leaves tx usable; any other
// error is the database's.
func (s *Service) storeIn(ctx context.Context, tx store.Tx, r *lethe.Request) (*lethe.Request, Outcome, *lethe.AuditEvent, error) {
	if r.IdempotencyKey != "" {
		prev, err := tx.FindRequestByIdempotencyKey(ctx, r.ClientID, r.IdempotencyKey)
		switch {
		case err == nil:
			if !sameSubmission(prev, r) {
				return nil, 0, nil, errKeyReused()
			}
			return prev, Replayed, nil, nil
		case !errors.Is(err, store.ErrNotFound):
			return nil, 0, nil, fmt.Errorf("find by idempotency key: %w", err)
		}
	}
	prev, err := tx.FindOpenRequest(ctx, r.ClientID, r.SubjectKey)
	switch {
	case err == nil:
		return prev, Duplicate, nil, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, 0, nil, fmt.Errorf("find open request: %w", err)
	}
	if err := tx.CreateRequest(ctx, r); err != nil {
		return nil, 0, nil, fmt.Errorf("create request: %w", err)
	}
	return r, Created, s.receivedEvent(ctx, r), nil
}

// sameSubmission reports whether r, submitted with prev's idempotency key,
// asks for what prev asked. Every submitted field counts: a retry that
// changed the callback_url would otherwise be answered as a replay and its
// new callback silently dropped.
func sameSubmission(prev, r *lethe.Request) bool {
	return prev.SubjectKey == r.SubjectKey && prev.Regulation == r.Regulation && prev.ExternalID == r.ExternalID &&
		prev.CallbackURL == r.CallbackURL && prev.CallbackFormat == r.CallbackFormat
}

func errKeyReused() error {
	return lethe.Errorf(lethe.ECONFLICT, "Idempotency-Key was already used for a different request")
}

// receivedEvent is the audit event of r's creation; ctx says who submitted
// it when r has no client.
func (s *Service) receivedEvent(ctx context.Context, r *lethe.Request) *lethe.AuditEvent {
	actor, actorID := lethe.ActorAdmin, ""
	if r.ClientID != "" {
		actor, actorID = lethe.ActorClient, r.ClientID
	} else if a, name := operators.Actor(ctx); a != lethe.ActorSystem {
		actor, actorID = a, name // the operator who submitted it, by name
	}
	return &lethe.AuditEvent{
		RequestID: r.ID, Time: r.ReceivedAt, Actor: actor, ActorID: actorID, Type: lethe.EventRequestReceived,
		Details: map[string]string{
			"regulation": string(r.Regulation),
			"identities": identityTypes(r.Identities),
			"due_at":     r.DueAt.UTC().Format(time.RFC3339),
		},
	}
}

// admit inserts, in tx, the first job and the received event of every
// request created in it (received holds their events): with a queue and a
// store that take several at once, one statement for all the jobs and one
// for all the events, whatever the batch's size. On an error, at is the
// index of the event whose own insert failed, or -1 when a shared insert
// did.
func (s *Service) admit(ctx context.Context, tx store.Tx, received []*lethe.AuditEvent) (at int, err error) {
	if len(received) == 0 {
		return -1, nil
	}
	if q, ok := s.queue.(ManyEnqueuer); ok {
		ids := make([]string, len(received))
		for i, ev := range received {
			ids[i] = ev.RequestID
		}
		if err := q.EnqueueResolves(ctx, tx, ids); err != nil {
			return -1, fmt.Errorf("enqueue resolve: %w", err)
		}
	} else {
		for i, ev := range received {
			if err := s.queue.EnqueueResolve(ctx, tx, ev.RequestID); err != nil {
				return i, fmt.Errorf("enqueue resolve: %w", err)
			}
		}
	}
	if b, ok := tx.(auditBatch); ok {
		if err := b.AppendAudits(ctx, received...); err != nil {
			return -1, fmt.Errorf("audit: %w", err)
		}
		return -1, nil
	}
	for i, ev := range received {
		if err := tx.AppendAudit(ctx, ev); err != nil {
			return i, fmt.Errorf("audit: %w", err)
		}
	}
	return -1, nil
}

func (s *Service) build(sub Submission) (*lethe.Request, error) {
	if len(sub.Identities) == 0 {
		return nil, lethe.Errorf(lethe.EINVALID, "identities must list at least one identity")
	}
	if len(sub.Identities) > MaxIdentities {
		return nil, lethe.Errorf(lethe.EINVALID, "identities may list at most %d identities", MaxIdentities)
	}
	ids, err := NormalizeIdentities(sub.Identities)
	if err != nil {
		return nil, err
	}
	reg := sub.Regulation
	if reg == "" {
		reg = lethe.GDPR
	}
	period, ok := s.deadlines[reg]
	if !ok {
		return nil, lethe.Errorf(lethe.EINVALID, "regulation is not accepted (accepted: %s)", s.regulations())
	}
	if err := checkText("external_id", sub.ExternalID, MaxExternalIDLen); err != nil {
		return nil, err
	}
	if err := checkText("Idempotency-Key", sub.IdempotencyKey, MaxIdempotencyLen); err != nil {
		return nil, err
	}
	if err := checkCallbackURL(sub.CallbackURL, s.callbacks); err != nil {
		return nil, err
	}
	if err := checkNoIdentity(ids, sub); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new request id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	return &lethe.Request{
		ID:             id.String(),
		ClientID:       sub.ClientID,
		ExternalID:     sub.ExternalID,
		Regulation:     reg,
		Status:         lethe.StatusReceived,
		Stage:          lethe.StageResolve,
		Identities:     ids,
		SubjectKey:     SubjectKey(s.keys, ids),
		IdempotencyKey: IdempotencyKey(s.keys, sub.ClientID, sub.IdempotencyKey),
		CallbackURL:    sub.CallbackURL,
		CallbackFormat: sub.CallbackFormat,
		ReceivedAt:     now,
		DueAt:          now.Add(period),
		UpdatedAt:      now,
	}, nil
}

// NormalizeIdentities normalises each identity and drops exact duplicates,
// keeping the first occurrence's order.
func NormalizeIdentities(in []lethe.Identity) ([]lethe.Identity, error) {
	out := make([]lethe.Identity, 0, len(in))
	seen := map[lethe.Identity]bool{}
	for i, id := range in {
		n, err := lethe.NormalizeIdentity(id)
		if err != nil {
			var le *lethe.Error
			if errors.As(err, &le) {
				return nil, lethe.Errorf(le.Code, "identities[%d]: %s", i, le.Message)
			}
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// SubjectKey is the keyed hash that stands for a set of normalised
// identities: order-independent, and useless without the deployment key.
func SubjectKey(keys *seal.Keyring, ids []lethe.Identity) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = string(id.Type) + ":" + id.Value
	}
	sort.Strings(parts)
	return keys.Hash("subject", strings.Join(parts, "\n"))
}

// IdempotencyKey is the stored form of a client's Idempotency-Key: a keyed
// hash, so that a key a partner built from a customer's data is not kept
// readable, while a retry with the same key still finds the first request.
// The client id is part of the hash because keys are per client. "" stays
// "" (no key).
func IdempotencyKey(keys *seal.Keyring, clientID, key string) string {
	if key == "" {
		return ""
	}
	return keys.Hash("idempotency", clientID+"\x00"+key)
}

// Cancel cancels a request that has not started erasing. A request that
// has, or has ended, is a conflict; one outside scope is not found.
func (s *Service) Cancel(ctx context.Context, scope store.Scope, id string, actor lethe.Actor, actorID string) (*lethe.Request, error) {
	var out *lethe.Request
	err := s.store.InTx(ctx, func(tx store.Tx) error {
		r, err := tx.LockRequest(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !scope.Sees(r.ClientID)) {
			return lethe.Errorf(lethe.ENOTFOUND, "deletion request not found")
		} else if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		conflict := lethe.Errorf(lethe.ECONFLICT, "deletion request is %s; only a request that has not started erasing can be canceled", r.Status)
		if !lethe.Cancelable(r.Status, r.Stage) {
			return conflict
		}
		// No tasks: resolve has not created them.
		ok, err := s.end.Terminate(ctx, tx, r, nil, terminate.Ending{
			To: lethe.StatusCanceled, Actor: actor, ActorID: actorID, At: s.now(),
			Details: map[string]string{"from": string(r.Status)},
		})
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		if !ok {
			return conflict
		}
		out, err = tx.GetRequest(ctx, id, scope)
		return err
	})
	return out, err
}

func (s *Service) regulations() string {
	var names []string
	for r := range s.deadlines {
		names = append(names, string(r))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func identityTypes(ids []lethe.Identity) string {
	types := make([]string, len(ids))
	for i, id := range ids {
		types[i] = string(id.Type)
	}
	return strings.Join(types, ",")
}

func checkText(field, v string, max int) error {
	if len(v) > max {
		return lethe.Errorf(lethe.EINVALID, "%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return lethe.Errorf(lethe.EINVALID, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return lethe.Errorf(lethe.EINVALID, "%s contains control characters", field)
		}
	}
	return nil
}

func checkCallbackURL(v string, allowed netguard.CallbackURLs) error {
	if v == "" {
		return nil
	}
	if err := checkText("callback_url", v, MaxCallbackURLLen); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return lethe.Errorf(lethe.EINVALID, "callback_url must be an absolute http(s) URL without credentials")
	}
	return allowed.Check(v)
}

// checkNoIdentity refuses a submission whose external_id, Idempotency-Key or
// callback_url carries personal data: these fields outlive minimisation in
// some form (external_id as given, the key as a keyed hash, the URL in a
// frozen status event until it is delivered), so an identity hidden in one
// would survive the erasure it asked for. Refused are every form of the
// request's identities (as given, normalised, any case, percent-, JSON- or
// HTML-encoded, a phone's national and formatted forms) and an "@" in any
// percent-encoding, which is how an email address looks. Other digit runs
// are allowed: order numbers and UUIDs look like phone numbers. The error
// names the field, never its value.
func checkNoIdentity(ids []lethe.Identity, sub Submission) error {
	if sub.ExternalID == "" && sub.IdempotencyKey == "" && sub.CallbackURL == "" {
		return nil // nothing to look in (an s2s request): no redactors to build
	}
	forms, lookalikes := redact.New(ids), redact.New(nil)
	var phones []string
	for _, id := range ids {
		if id.Type != lethe.IdentityPhone {
			continue
		}
		if n, err := phonenumbers.Parse(id.Value, ""); err == nil {
			phones = append(phones, phonenumbers.GetNationalSignificantNumber(n))
		}
	}
	for _, f := range []struct{ name, value string }{
		{"external_id", sub.ExternalID},
		{"Idempotency-Key", sub.IdempotencyKey},
		{"callback_url", sub.CallbackURL},
	} {
		if f.value == "" {
			continue
		}
		if carriesForm(forms, lookalikes, f.value) || carriesDigits(phones, f.value) || carriesAt(f.value) {
			return lethe.Errorf(lethe.EINVALID, "%s must not contain an identity or an email address", f.name)
		}
	}
	return nil
}

// carriesForm reports whether forms (the request's identities) removes
// more from v than lookalikes (no identity) does: a form of an identity
// stands in v. The redactor cuts long text, so v is read in overlapping
// windows shorter than its limit; the overlap is longer than any identity
// intake accepts, so no form straddles every window.
func carriesForm(forms, lookalikes *redact.Redactor, v string) bool {
	const window, step = redact.MaxLen, redact.MaxLen / 2
	for start := 0; ; start += step {
		end := min(start+window, len(v))
		part := v[start:end]
		if forms.String(part) != lookalikes.String(part) {
			return true
		}
		if end == len(v) {
			return false
		}
	}
}

// carriesDigits reports whether a run of digits and phone separators in v
// (spaces, dashes, dots, brackets, "+", "/"), percent-decoded, holds one of
// phones' national numbers once the separators are dropped: a phone
// identity in any format ("+44 7700 900123", "07700-900123",
// "%2B44%207700...") leaves them there. The redactor cannot tell such a
// form from any long number, which it removes with or without identities.
func carriesDigits(phones []string, v string) bool {
	if len(phones) == 0 {
		return false
	}
	for _, form := range decodings(v) {
		runs := strings.FieldsFunc(form, func(r rune) bool {
			return (r < '0' || r > '9') && !strings.ContainsRune(" -.()+/", r)
		})
		for _, run := range runs {
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, run)
			for _, p := range phones {
				if p != "" && strings.Contains(digits, p) {
					return true
				}
			}
		}
	}
	return false
}

// decodings returns v and its percent-decodings (once, twice), as far as
// they decode and differ.
func decodings(v string) []string {
	out := []string{v}
	for range 2 {
		d, err := url.PathUnescape(v)
		if err != nil || d == v {
			break
		}
		out = append(out, d)
		v = d
	}
	return out
}

// carriesAt reports whether v holds an "@", as given or percent-encoded
// (once or twice).
func carriesAt(v string) bool {
	for _, form := range decodings(v) {
		if strings.Contains(form, "@") {
			return true
		}
	}
	return false
}
