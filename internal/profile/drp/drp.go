package drp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Paths of the profile (sections 2.01 to 2.06).
const (
	PathRequests = "/v1/data-rights-request"
	PathAgent    = "/v1/agent"
)

// RateLimitPrefix prefixes the profile's rate limit keys.
const RateLimitPrefix = "drp:"

// Defaults.
const (
	// DefaultMaxBodyBytes bounds a body: a signed request is a few KiB.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultClockSkew is how far in the future an issued-at may be:
	// agents' clocks drift, and a request refused for a second of skew
	// helps nobody. expires-at is checked without slack.
	DefaultClockSkew = time.Minute
	// DefaultKeep is how long after it ends a request's record is kept
	// for agents (expires_at): section 3.02's floor of 7 days, which is
	// also lethe's default for request details.
	DefaultKeep = 7 * 24 * time.Hour
)

// DefaultRule limits each agent: 600 requests a minute, then a minute's
// block, like the other partner APIs that carry bulk traffic.
var DefaultRule = ratelimit.Rule{Limit: 600, Window: time.Minute, Block: time.Minute}

// Options configure a Handler.
type Options struct {
	Intake  *intake.Service   // required
	Clients *clients.Service  // required
	Store   store.Store       // required: status reads
	Limiter ratelimit.Limiter // required
	// BusinessID is the covered business's id in the DRP directory;
	// requests naming another business are refused. Required.
	BusinessID string
	// Rules are the rate limits per agent; a zero Default means
	// DefaultRule.
	Rules ratelimit.Rules
	// Voluntary is the regulation of a request that names no regime
	// (section 2.01: considered for voluntary processing). Default CCPA,
	// the regime whose rights DRP encodes.
	Voluntary lethe.Regulation
	// ClockSkew: default DefaultClockSkew.
	ClockSkew time.Duration
	// Keep: default DefaultKeep.
	Keep time.Duration
	// MaxBodyBytes: default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Throttle refuses sign-ins after failures, per token or agent and per
	// source address. Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger; default slog.Default(). Never given identities, tokens or
	// signatures.
	Logger *slog.Logger
}

// Handler serves the profile.
type Handler struct {
	o        Options
	throttle *auth.Throttle
	errors   response.Errors
}

// New validates o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Intake == nil || o.Clients == nil || o.Store == nil || o.Limiter == nil {
		return nil, errors.New("drp: Intake, Clients, Store and Limiter are required")
	}
	if o.BusinessID == "" {
		return nil, errors.New("drp: BusinessID is required")
	}
	if o.Rules.Default == (ratelimit.Rule{}) {
		o.Rules.Default = DefaultRule
	}
	if err := o.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("drp: %w", err)
	}
	if o.Voluntary == "" {
		o.Voluntary = lethe.CCPA
	}
	if o.ClockSkew < 0 || o.Keep < 0 || o.MaxBodyBytes < 0 {
		return nil, errors.New("drp: ClockSkew, Keep and MaxBodyBytes must not be negative")
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, throttle: o.Throttle}
	if h.throttle == nil {
		h.throttle = auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, nil)
	}
	h.errors = response.Errors{
		Status: errorStatus, Body: errorBody, InternalMessage: msgInternal,
		Surface: "drp", Logger: o.Logger,
	}
	return h, nil
}

// Prefixes are the paths the profile owns (see httpapi.Profile).
func (h *Handler) Prefixes() []string { return []string{PathRequests, PathAgent} }

// Format is the profile's callback format, for the pipeline.
func (h *Handler) Format() Format { return Format{Keep: h.o.Keep} }

// Mount registers the profile's routes on mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathRequests, h.exercise)
	// Versions before 0.9.3 had a trailing slash; section 2.01 lets
	// implementers keep it.
	mux.HandleFunc("POST "+PathRequests+"/{$}", h.exercise)
	mux.HandleFunc("GET "+PathRequests+"/{id}", h.status)
	mux.HandleFunc("DELETE "+PathRequests+"/{id}", h.revoke)
	mux.HandleFunc("POST "+PathAgent+"/{agent}", h.setup)
	mux.HandleFunc("GET "+PathAgent+"/{agent}", h.agentInfo)
	for p, allow := range map[string]string{
		PathRequests:           http.MethodPost,
		PathRequests + "/{$}":  http.MethodPost,
		PathRequests + "/{id}": "GET, DELETE",
		PathAgent + "/{agent}": "GET, POST",
	} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.WriteError(w, r, &lethe.Error{Code: response.CodeMethodNotAllowed, Message: msgMethod})
		})
	}
}

func (h *Handler) now() time.Time { return h.o.Now().UTC() }

// readBody reads the whole body within the limit.
func (h *Handler) readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, nil
	}
	body, err := request.ReadBody(r, h.o.MaxBodyBytes)
	switch {
	case err == nil:
		return body, nil
	case lethe.ErrorCode(err) == lethe.ETOOLARGE:
		return nil, lethe.Errorf(lethe.ETOOLARGE, "request body is larger than %d bytes", h.o.MaxBodyBytes)
	case errors.Is(err, request.ErrTruncated):
		return nil, lethe.Errorf(lethe.EINVALID, "request body is shorter than its Content-Length")
	default:
		return nil, lethe.Errorf(lethe.EINVALID, "request body could not be read")
	}
}

// agent authenticates the bearer token, counting a failure against the
// token and the source address.
func (h *Handler) agent(r *http.Request) (clients.Agent, auth.Attempt, error) {
	tok, _ := request.BearerToken(r)
	attempt := auth.AttemptOf(r, "drp", tok)
	if err := h.throttle.Check(attempt); err != nil {
		return clients.Agent{}, attempt, err
	}
	a, err := h.o.Clients.AuthenticateAgentToken(r.Context(), tok)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EUNAUTH {
			return clients.Agent{}, attempt, h.refuse(attempt)
		}
		return clients.Agent{}, attempt, err
	}
	return a, attempt, nil
}

// refuse counts a failed sign-in and returns what to answer: the same
// message for a bad token and a bad signature, or 429 once the failures
// reach the throttle's limit.
func (h *Handler) refuse(attempt auth.Attempt) error {
	if err := h.throttle.Fail(attempt); err != nil {
		return err
	}
	return errBadSignature
}

func (h *Handler) allow(ctx context.Context, clientID string) error {
	return auth.Allow(ctx, h.o.Limiter, RateLimitPrefix, auth.Principal{ClientID: clientID}, h.o.Rules)
}

// checkEnvelope applies section 3.07's checks after the signature: the
// agent and business named in the message, then its time window.
func (h *Handler) checkEnvelope(e Envelope, agentID string) error {
	if e.AgentID != agentID {
		return lethe.Errorf(lethe.EFORBIDDEN, "agent-id does not match the agent of the bearer token")
	}
	if e.BusinessID != h.o.BusinessID {
		return lethe.Errorf(lethe.EFORBIDDEN, "business-id does not name this business")
	}
	now := h.now()
	if e.IssuedAt.After(now.Add(h.o.ClockSkew)) {
		return lethe.Errorf(lethe.EINVALID, "issued-at is in the future")
	}
	if !now.Before(e.ExpiresAt) {
		// Section 2.01: discard it with a fatal error; a retry of the
		// same message can never succeed.
		return fatal(lethe.EINVALID, "the request expired at its expires-at")
	}
	if e.Version != Version {
		return lethe.Errorf(lethe.EINVALID, "drp.version must be %q", Version)
	}
	return nil
}

// signedByAgent reads a request an agent signed with its token: the
// body, the agent the bearer token names, the message opened with that
// agent's keys (a bad signature counts as a failed sign-in), and the
// agent's rate limit.
func (h *Handler) signedByAgent(r *http.Request) (clients.Agent, []byte, error) {
	body, err := h.readBody(r)
	if err != nil {
		return clients.Agent{}, nil, err
	}
	a, attempt, err := h.agent(r)
	if err != nil {
		return clients.Agent{}, nil, err
	}
	msg, err := Open(body, a.VerifyKeys)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EUNAUTH {
			err = h.refuse(attempt)
		}
		return clients.Agent{}, nil, err
	}
	if err := h.allow(r.Context(), a.ClientID); err != nil {
		return clients.Agent{}, nil, err
	}
	return a, msg, nil
}

// exercise serves POST /v1/data-rights-request (section 2.01).
func (h *Handler) exercise(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, msg, err := h.signedByAgent(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	x, err := DecodeExercise(msg)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	if err := h.checkEnvelope(x.Envelope, a.ID); err != nil {
		h.WriteError(w, r, err)
		return
	}
	if x.Exercise != RightDeletion {
		// Known or not, a right lethe does not carry out is answered with
		// section 3.06's own example. Not fatal: no request was kept that
		// could move to denied.
		h.WriteError(w, r, lethe.Errorf(lethe.EINVALID, msgUnsupportedRight))
		return
	}
	reg := h.o.Voluntary
	switch x.Regime {
	case "":
	case "ccpa":
		reg = lethe.CCPA
	default:
		h.WriteError(w, r, lethe.Errorf(lethe.EINVALID, "regime is not supported (supported: ccpa, or none for voluntary processing)"))
		return
	}
	if len(x.Identities) == 0 {
		h.WriteError(w, r, lethe.Errorf(lethe.EINVALID, "the request carries neither email nor phone_number, so no data can be matched to it"))
		return
	}
	sub := intake.Submission{
		Actor: lethe.ActorClient, ClientID: a.ClientID, Identities: x.Identities, Regulation: reg,
		ExternalID: x.AgentRequestID, IdempotencyKey: x.AgentRequestID,
	}
	if x.StatusCallback != "" {
		sub.CallbackURL, sub.CallbackFormat = x.StatusCallback, FormatName
	}
	req, outcome, err := h.o.Intake.Submit(ctx, sub)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.ECONFLICT {
			err = lethe.Errorf(lethe.ECONFLICT, "agent-request-id was already used for a different request")
		}
		h.WriteError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "drp data rights request",
		slog.String("request_id", req.ID), slog.String("client_id", a.ClientID),
		slog.Bool("duplicate", outcome != intake.Created))
	response.JSON(w, http.StatusOK, StatusOf(req, h.now(), h.o.Keep, ""))
}

// statusOf renders req with the reason of its extension, if it has one.
func (h *Handler) statusOf(ctx context.Context, req *lethe.Request) (ExerciseStatus, error) {
	ext, err := h.o.Store.GetExtension(ctx, req.ID)
	switch {
	case err == nil:
		return StatusOf(req, h.now(), h.o.Keep, ext.Reason), nil
	case errors.Is(err, store.ErrNotFound):
		return StatusOf(req, h.now(), h.o.Keep, ""), nil
	default:
		return ExerciseStatus{}, fmt.Errorf("extension: %w", err)
	}
}

// find returns the request id names for agent a: 404 when there is none,
// 403 when it is another client's (section 2.02).
func (h *Handler) find(ctx context.Context, a clients.Agent, id string) (*lethe.Request, error) {
	req, err := h.o.Store.GetRequest(ctx, id, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, msgNotFound)
	}
	if err != nil {
		return nil, err
	}
	if req.ClientID != a.ClientID {
		return nil, lethe.Errorf(lethe.EFORBIDDEN, "the request is managed by another agent")
	}
	return req, nil
}

// status serves GET /v1/data-rights-request/{id} (section 2.02).
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	a, _, err := h.agent(r)
	if err == nil {
		err = h.allow(r.Context(), a.ClientID)
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	req, err := h.find(r.Context(), a, r.PathValue("id"))
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	st, err := h.statusOf(r.Context(), req)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	response.JSON(w, http.StatusOK, st)
}

// revoke serves DELETE /v1/data-rights-request/{id} (section 2.04): a
// signed request to stop a request lethe has not started erasing for.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, msg, err := h.signedByAgent(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	agentID, businessID, err := DecodeRevoke(msg)
	if err == nil && agentID != "" && agentID != a.ID {
		err = lethe.Errorf(lethe.EFORBIDDEN, "agent-id does not match the agent of the bearer token")
	}
	if err == nil && businessID != "" && businessID != h.o.BusinessID {
		err = lethe.Errorf(lethe.EFORBIDDEN, "business-id does not name this business")
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	req, err := h.find(ctx, a, r.PathValue("id"))
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	got, err := h.o.Intake.Cancel(ctx, store.Scope{ClientID: a.ClientID}, req.ID, lethe.ActorClient, a.ClientID)
	if lethe.ErrorCode(err) == lethe.ECONFLICT {
		// Erasure has started or the request has ended: say where it
		// stands in DRP's words, not lethe's.
		if cur, ferr := h.find(ctx, a, req.ID); ferr == nil {
			req = cur
		}
		st, _ := stateOf(req, h.now(), h.o.Keep)
		err = lethe.Errorf(lethe.ECONFLICT, "the request is %s and can no longer be revoked", st.Status)
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "drp request revoked", slog.String("request_id", got.ID), slog.String("client_id", a.ClientID))
	response.JSON(w, http.StatusOK, StatusOf(got, h.now(), h.o.Keep, ""))
}

// setup serves POST /v1/agent/{agent} (section 2.05): an agent signs a
// message naming itself and this business, and gets a pairwise bearer
// token. Any failure is a 403 with no body, as the section says.
func (h *Handler) setup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	agentID := r.PathValue("agent")
	attempt := auth.AttemptOf(r, "drp", "agent:"+agentID)
	if err := h.throttle.Check(attempt); err != nil {
		h.WriteError(w, r, err)
		return
	}
	forbid := func() {
		if err := h.throttle.Fail(attempt); err != nil {
			h.WriteError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
	}
	body, err := h.readBody(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	a, err := h.o.Clients.FindAgent(ctx, agentID)
	if lethe.ErrorCode(err) == lethe.EUNAUTH {
		forbid()
		return
	} else if err != nil {
		h.WriteError(w, r, err)
		return
	}
	msg, err := Open(body, a.VerifyKeys)
	if err != nil {
		forbid()
		return
	}
	e, err := DecodeSetup(msg)
	if err != nil || h.checkEnvelope(e, a.ID) != nil {
		forbid()
		return
	}
	if err := h.allow(ctx, a.ClientID); err != nil {
		h.WriteError(w, r, err)
		return
	}
	tok, err := h.o.Clients.IssueAgentToken(ctx, a.ClientID)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "drp agent token issued", slog.String("client_id", a.ClientID))
	response.JSON(w, http.StatusOK, SetupResponse{AgentID: a.ID, Token: tok})
}

// SetupResponse is section 2.05.1's answer.
type SetupResponse struct {
	AgentID string `json:"agent-id"`
	Token   string `json:"token"`
}

// agentInfo serves GET /v1/agent/{agent} (section 2.06): {} when the
// bearer token is that agent's, 403 otherwise.
func (h *Handler) agentInfo(w http.ResponseWriter, r *http.Request) {
	a, _, err := h.agent(r)
	if err == nil && a.ID != r.PathValue("agent") {
		err = lethe.Errorf(lethe.EFORBIDDEN, "the bearer token is not this agent's")
	}
	if err == nil {
		err = h.allow(r.Context(), a.ClientID)
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	response.Raw(w, http.StatusOK, []byte(`{}`))
}

// RegisterAgents registers the directory's agents as clients (see
// clients.RegisterAgent); every process may run it at start.
func RegisterAgents(ctx context.Context, cs *clients.Service, agents map[string]ed25519.PublicKey) error {
	for id, key := range agents {
		if _, err := cs.RegisterAgent(ctx, id, key); err != nil {
			return fmt.Errorf("drp agent %s: %w", id, err)
		}
	}
	return nil
}
