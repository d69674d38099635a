package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/internal/pacing"
)

// API is the part of a processor connector that differs between
// processors: how to ask for one identity's deletion. Everything else
// (HTTP, budget, blocks, batches, checkpoints, pending answers, reports)
// is the Connector's.
type API interface {
	// Object names the report line of this processor
	// ("user_deletion_requests"): 1-64 of A-Z a-z 0-9 _ . : / -.
	Object() string
	// Submit asks the processor to delete id's data and returns the
	// processor's reference for the request ("" when it gives none). An
	// answer that the request already exists is a success. Errors come
	// from Client.Do and Client.Classify, or say what was wrong with the
	// answer; they never hold the identity's value.
	Submit(ctx context.Context, c *Client, id lethe.Identity) (ref string, err error)
}

// StatusAPI is implemented by APIs whose processor says how a deletion
// stands. Without it, "done" can only mean "accepted by the processor".
type StatusAPI interface {
	API
	// Status returns the state of each identity's deletion, in order; at
	// most MaxStatusBatch identities per call.
	Status(ctx context.Context, c *Client, ids []lethe.Identity) ([]State, error)
	MaxStatusBatch() int
}

// CheckAPI is implemented by APIs that can check their configuration
// without asking for a deletion (connect: get a token).
type CheckAPI interface {
	API
	Check(ctx context.Context, c *Client) error
}

// State is how a processor reports one identity's deletion.
type State int

const (
	StateNotFound  State = iota // never asked for (or forgotten)
	StateSubmitted              // asked for, not completed yet
	StateCompleted              // deleted
	StateCanceled               // the processor canceled the request
)

// Defaults are an API's defaults for the common options.
type Defaults struct {
	Identities []lethe.IdentityType // nil: the data map must list them
	RateLimit  Rate                 // zero: unlimited
	// Block is how long a 429 or 503 without Retry-After holds calls back.
	Block time.Duration
}

// Connector forwards erasures to one processor through its API.
type Connector struct {
	name    string
	api     API
	status  StatusAPI // nil without a status endpoint
	o       Options
	client  *Client
	allowed map[lethe.IdentityType]bool
}

var (
	_ connector.Connector = (*Connector)(nil)
	_ connector.Deadliner = (*Connector)(nil)
	_ connector.Validator = (*Connector)(nil)
	_ connector.Closer    = (*Connector)(nil)
)

// New checks o (filling defaults from def) and returns the connector over
// api. It does not call the processor.
func New(name string, o Options, def Defaults, api API) (*Connector, error) {
	return newConnector(name, o, def, api, time.Now)
}

func newConnector(name string, o Options, def Defaults, api API, now func() time.Time) (*Connector, error) {
	if err := o.check(def); err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	if def.Block <= 0 {
		def.Block = time.Minute
	}
	c := &Connector{
		name:    name,
		api:     api,
		o:       o,
		client:  newClient(name, o, def.Block, now),
		allowed: map[lethe.IdentityType]bool{},
	}
	c.status, _ = api.(StatusAPI)
	for _, t := range o.Identities {
		c.allowed[t] = true
	}
	return c, nil
}

// Validate implements connector.Validator with the API's Check, if any.
// Only a refusal (wrong credentials, a 4xx) stops lethe's start: a
// processor that is down or throttling now is the tasks' to wait for, not
// a reason to keep every other target from running.
func (c *Connector) Validate(ctx context.Context) error {
	ck, ok := c.api.(CheckAPI)
	if !ok {
		return nil
	}
	if err := ck.Check(ctx, c.client); err != nil && (connector.IsPermanent(err) || ctx.Err() != nil) {
		return err
	}
	return nil
}

// Close implements connector.Closer.
func (c *Connector) Close() error {
	c.client.http.CloseIdleConnections()
	return nil
}

// Client returns the connector's HTTP client (for its API).
func (c *Connector) Client() *Client { return c.client }

// ConfirmWithin implements connector.Deadliner.
func (c *Connector) ConfirmWithin() time.Duration { return c.o.ConfirmWithin }

// checkpoint is what a task keeps between Erase calls: which identities
// the processor has accepted (by a digest, so the checkpoint names nobody)
// with the processor's reference, and how many status checks were made.
type checkpoint struct {
	Sent  map[string]string `json:"sent,omitempty"`
	Polls int               `json:"polls,omitempty"`
}

func decodeCheckpoint(s string) checkpoint {
	var cp checkpoint
	if s != "" && json.Unmarshal([]byte(s), &cp) != nil {
		cp = checkpoint{} // not ours (a changed data map): start over
	}
	if cp.Sent == nil {
		cp.Sent = map[string]string{}
	}
	return cp
}

// encode keeps the checkpoint within connector.MaxCheckpointLen: first
// without the references (they only help the processor's support), then
// with as many digests as fit. What falls out is submitted again, which
// processors answer as a duplicate.
func (cp checkpoint) encode() string {
	b, _ := json.Marshal(cp)
	if len(b) <= connector.MaxCheckpointLen {
		return string(b)
	}
	keys := make([]string, 0, len(cp.Sent))
	for k := range cp.Sent {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	short := checkpoint{Sent: map[string]string{}, Polls: cp.Polls}
	for _, k := range keys {
		short.Sent[k] = ""
		if b, _ := json.Marshal(short); len(b) > connector.MaxCheckpointLen {
			delete(short.Sent, k)
			break
		}
	}
	b, _ = json.Marshal(short)
	return string(b)
}

// digest identifies an identity inside one request's checkpoint without
// holding its value.
func digest(requestID string, id lethe.Identity) string {
	h := sha256.Sum256([]byte(requestID + "\x00" + string(id.Type) + "\x00" + id.Value))
	return hex.EncodeToString(h[:8])
}

// identities returns the subject's identities this processor may receive.
func (c *Connector) identities(s connector.Subject) []lethe.Identity {
	return AllowedIdentities(s, c.allowed)
}

// AllowedIdentities returns the subject's identities of the allowed
// types, without repeats or empty values, in a stable order: what one
// third party may be sent about the subject.
func AllowedIdentities(s connector.Subject, allowed map[lethe.IdentityType]bool) []lethe.Identity {
	seen := map[lethe.Identity]bool{}
	var out []lethe.Identity
	for _, id := range s.Identities {
		if allowed[id.Type] && id.Value != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Value < out[j].Value
	})
	return out
}

func (c *Connector) report(n int) lethe.Report {
	it := lethe.ReportItem{Object: c.api.Object(), Action: lethe.ActionForward, Rows: int64(n)}
	if c.status == nil {
		it.Reason = "accepted by the processor; its completion cannot be observed"
	}
	return lethe.Report{Items: []lethe.ReportItem{it}}
}

// states asks the processor how each identity's deletion stands, in
// batches its API accepts.
func (c *Connector) states(ctx context.Context, ids []lethe.Identity) ([]State, error) {
	out := make([]State, 0, len(ids))
	step := max(c.status.MaxStatusBatch(), 1)
	for i := 0; i < len(ids); i += step {
		batch := ids[i:min(i+step, len(ids))]
		st, err := c.status.Status(ctx, c.client, batch)
		if err != nil {
			return nil, err
		}
		if len(st) != len(batch) {
			return nil, c.client.Errorf("status endpoint answered %d results for %d identifiers", len(st), len(batch))
		}
		out = append(out, st...)
	}
	return out, nil
}

// Resolve implements connector.Connector: a processor links nothing lethe
// could use.
func (c *Connector) Resolve(ctx context.Context, _ connector.Subject) ([]lethe.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.client.Errorf("resolve: %w", err)
	}
	return nil, nil
}

// Plan implements connector.Connector: one "forward" line counting the
// identities Erase would send. With a status endpoint the processor is
// asked first, so identities already deleted or asked for are not
// counted; without one every allowed identity not in the checkpoint is.
func (c *Connector) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.client.Errorf("plan: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 {
		return lethe.Report{}, nil
	}
	cp := decodeCheckpoint(s.Checkpoint)
	n := 0
	if c.status == nil {
		for _, id := range ids {
			if _, ok := cp.Sent[digest(s.RequestID, id)]; !ok {
				n++
			}
		}
		return c.report(n), nil
	}
	st, err := c.states(ctx, ids)
	if err != nil {
		return lethe.Report{}, c.plain(err)
	}
	for _, x := range st {
		if x == StateNotFound || x == StateCanceled {
			n++
		}
	}
	return c.report(n), nil
}

// Erase implements connector.Connector. Each call:
//
//  1. with a status endpoint, asks how every allowed identity stands: the
//     completed are done, the submitted are waited for (and not sent
//     again, whoever sent them), a deletion the processor canceled after
//     this task submitted it fails the task;
//  2. submits up to BatchSize of the rest, recording each accepted one in
//     the checkpoint;
//  3. answers Pending while anything is left to submit or, with a status
//     endpoint, to complete; done otherwise.
//
// Rows count the identities this call got accepted, so the pipeline's sum
// over calls is the number forwarded. A throttled call (429, the block
// after it, or this target's own budget) is Pending with the checkpoint,
// never done and never a failed attempt. An error after some identities
// were accepted is Pending too, so the checkpoint keeps them.
func (c *Connector) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.client.Errorf("erase: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 {
		return lethe.Report{}, nil // nothing this processor may receive
	}
	cp := decodeCheckpoint(s.Checkpoint)
	var todo []lethe.Identity
	waiting := 0
	if c.status == nil {
		for _, id := range ids {
			if _, ok := cp.Sent[digest(s.RequestID, id)]; !ok {
				todo = append(todo, id)
			}
		}
	} else {
		st, err := c.states(ctx, ids)
		if err != nil {
			return lethe.Report{}, c.pendingOr(err, cp, 0)
		}
		for i, id := range ids {
			d := digest(s.RequestID, id)
			switch st[i] {
			case StateCompleted:
			case StateSubmitted:
				if _, ok := cp.Sent[d]; !ok {
					cp.Sent[d] = "" // sent before a crash, or by another request
				}
				waiting++
			case StateCanceled:
				if _, ok := cp.Sent[d]; ok {
					return lethe.Report{}, connector.Permanent(c.client.Errorf("the processor canceled a deletion request lethe submitted; ask the processor why before retrying"))
				}
				todo = append(todo, id) // an old request's cancellation: ask again
			default:
				todo = append(todo, id) // never asked, or the processor forgot
			}
		}
		if len(todo) == 0 && waiting == 0 {
			return c.report(0), nil // every deletion is completed
		}
	}

	batch := todo[:min(len(todo), c.o.BatchSize)]
	accepted := 0
	var refs []string
	// The report names the processor's jobs, so the receipt says where
	// the deletion went.
	withRefs := func(r lethe.Report) lethe.Report {
		if len(r.Items) > 0 {
			r.Items[0].Reference = strings.Join(refs, ",")
		}
		return r
	}
	for _, id := range batch {
		ref, err := c.api.Submit(ctx, c.client, id)
		if err != nil {
			return withRefs(c.report(accepted)), c.pendingOr(err, cp, accepted)
		}
		cp.Sent[digest(s.RequestID, id)] = ref
		if ref != "" {
			refs = append(refs, ref)
		}
		accepted++
	}
	rep := withRefs(c.report(accepted))
	if left := len(todo) - len(batch); left > 0 {
		return rep, &connector.PendingError{
			Checkpoint: cp.encode(),
			Reason:     fmt.Sprintf("submitted %d identities; %d more follow", len(batch), left),
		}
	}
	if c.status == nil {
		return rep, nil // accepted is all this processor will ever say
	}
	after := pacing.Backoff(c.o.PollInterval, c.o.PollMax, cp.Polls)
	cp.Polls++
	return rep, &connector.PendingError{
		After:      after,
		Checkpoint: cp.encode(),
		Reason:     fmt.Sprintf("submitted; waiting for the processor to complete %d deletions", waiting+len(batch)),
	}
}

// pendingOr turns a throttled call into Pending with the checkpoint, and
// any other error after accepted > 0 into Pending too (keeping what was
// accepted); otherwise the error stands.
func (c *Connector) pendingOr(err error, cp checkpoint, accepted int) error {
	var th *ThrottledError
	if errors.As(err, &th) {
		return &connector.PendingError{After: th.After, Checkpoint: cp.encode(), Reason: th.Reason}
	}
	if accepted > 0 && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return &connector.PendingError{
			After:      c.o.PollInterval,
			Checkpoint: cp.encode(),
			Reason:     fmt.Sprintf("submitted %d identities, then: %v", accepted, err),
		}
	}
	return err
}

// plain is for Plan and Verify, which have no pending answer: throttling is
// a retryable error there.
func (c *Connector) plain(err error) error {
	var th *ThrottledError
	if errors.As(err, &th) {
		return c.client.Errorf("%s", th.Error())
	}
	return err
}

// Verify implements connector.Connector. With a status endpoint every
// allowed identity's deletion must be completed. Without one lethe cannot
// observe the processor after it accepted the request: Verify passes, and
// the task's report says "accepted by the processor" (see the package
// documentation).
func (c *Connector) Verify(ctx context.Context, s connector.Subject) error {
	if err := ctx.Err(); err != nil {
		return c.client.Errorf("verify: %w", err)
	}
	ids := c.identities(s)
	if len(ids) == 0 || c.status == nil {
		return nil
	}
	st, err := c.states(ctx, ids)
	if err != nil {
		return c.plain(err)
	}
	var counts [4]int
	for _, x := range st {
		counts[x]++
	}
	if left := len(ids) - counts[StateCompleted]; left > 0 {
		var parts []string
		for _, p := range []struct {
			name string
			s    State
		}{{"submitted", StateSubmitted}, {"not found", StateNotFound}, {"canceled", StateCanceled}} {
			if counts[p.s] > 0 {
				parts = append(parts, fmt.Sprintf("%s: %d", p.name, counts[p.s]))
			}
		}
		return c.client.Errorf("the processor has not completed %d of %d deletions (%s)", left, len(ids), strings.Join(parts, ", "))
	}
	return nil
}
