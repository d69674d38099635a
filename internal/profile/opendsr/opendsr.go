package opendsr

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Paths of the profile. Section 3.4 puts the API's major version first.
const (
	PathDiscovery   = "/v2/discovery"
	PathRequests    = "/v2/requests"
	PathCertificate = "/v2/certificate.pem"
)

// RateLimitPrefix prefixes the profile's rate limit keys.
const RateLimitPrefix = "opendsr:"

// DefaultMaxBodyBytes bounds a body; a request with a handful of
// identities and extensions is a few KiB.
const DefaultMaxBodyBytes = 64 << 10

// DefaultRule limits each controller: 600 requests a minute, then a
// minute's block (section 10 asks not to throttle in normal operation).
var DefaultRule = ratelimit.Rule{Limit: 600, Window: time.Minute, Block: time.Minute}

// Options configure a Handler.
type Options struct {
	Intake  *intake.Service   // required
	Clients *clients.Service  // required
	Store   store.Store       // required: status reads
	Keyring *seal.Keyring     // required: finds a request by its subject_request_id
	Limiter ratelimit.Limiter // required
	Signer  *Signer           // required
	// Domain is the processor's domain: X-OpenDSR-Processor-Domain, and
	// the host of processor_certificate. Required.
	Domain string
	// Rules are the rate limits per controller; a zero Default means
	// DefaultRule.
	Rules ratelimit.Rules
	// MaxBodyBytes: default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Throttle refuses sign-ins after failures, per API key and per
	// source address. Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger; default slog.Default(). Never given identities or secrets.
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
	if o.Intake == nil || o.Clients == nil || o.Store == nil || o.Keyring == nil || o.Limiter == nil || o.Signer == nil {
		return nil, errors.New("opendsr: Intake, Clients, Store, Keyring, Limiter and Signer are required")
	}
	if o.Domain == "" {
		return nil, errors.New("opendsr: Domain is required")
	}
	if o.Rules.Default == (ratelimit.Rule{}) {
		o.Rules.Default = DefaultRule
	}
	if err := o.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("opendsr: %w", err)
	}
	if o.MaxBodyBytes < 0 {
		return nil, errors.New("opendsr: MaxBodyBytes must not be negative")
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
		Status: errorStatus, Body: errorBody, Challenge: `Basic realm="opendsr"`,
		Surface: "opendsr", Logger: o.Logger,
	}
	return h, nil
}

// Prefixes are the paths the profile owns (see httpapi.Profile).
func (h *Handler) Prefixes() []string {
	return []string{PathDiscovery, PathRequests, PathCertificate}
}

// Format is the profile's callback format, for the pipeline.
func (h *Handler) Format() Format { return Format{Signer: h.o.Signer, Domain: h.o.Domain} }

// Mount registers the profile's routes on mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathDiscovery, h.discovery)
	mux.HandleFunc("GET "+PathCertificate, h.certificate)
	mux.HandleFunc("POST "+PathRequests, h.create)
	mux.HandleFunc("GET "+PathRequests+"/{id}", h.status)
	mux.HandleFunc("DELETE "+PathRequests+"/{id}", h.cancel)
	for p, allow := range map[string]string{
		PathDiscovery: http.MethodGet, PathCertificate: http.MethodGet,
		PathRequests: http.MethodPost, PathRequests + "/{id}": "GET, DELETE",
	} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.WriteError(w, r, &lethe.Error{Code: response.CodeMethodNotAllowed, Message: "method not allowed"})
		})
	}
}

func (h *Handler) now() time.Time { return h.o.Now().UTC() }

// Discovery is section 6.3's document.
type Discovery struct {
	APIVersion                   string              `json:"api_version"`
	SupportedIdentities          []SupportedIdentity `json:"supported_identities"`
	SupportedSubjectRequestTypes []string            `json:"supported_subject_request_types"`
	ProcessorCertificate         string              `json:"processor_certificate"`
}

// SupportedIdentity is one identity_type and identity_format pair.
type SupportedIdentity struct {
	IdentityType   string `json:"identity_type"`
	IdentityFormat string `json:"identity_format"`
}

// discovery serves GET /v2/discovery, without authentication: a
// controller reads the certificate URL from it to check callbacks
// (section 8.8).
func (h *Handler) discovery(w http.ResponseWriter, r *http.Request) {
	response.JSON(w, http.StatusOK, Discovery{
		APIVersion: APIVersion,
		SupportedIdentities: []SupportedIdentity{
			{IdentityType: "email", IdentityFormat: "raw"},
			{IdentityType: "controller_customer_id", IdentityFormat: "raw"},
		},
		SupportedSubjectRequestTypes: []string{TypeErasure},
		ProcessorCertificate:         "https://" + h.o.Domain + PathCertificate,
	})
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(h.o.Signer.CertificatePEM())
}

// controller authenticates HTTP Basic credentials (a client's API key
// and shared secret) and counts the client's rate limit.
func (h *Handler) controller(r *http.Request) (string, error) {
	key, secret, ok := r.BasicAuth()
	attempt := auth.AttemptOf(r, "opendsr", key)
	if err := h.throttle.Check(attempt); err != nil {
		return "", err
	}
	refuse := func() error {
		if err := h.throttle.Fail(attempt); err != nil {
			return err
		}
		return lethe.Errorf(lethe.EUNAUTH, "invalid credentials")
	}
	if !ok || key == "" || secret == "" {
		return "", refuse()
	}
	clientID, secrets, err := h.o.Clients.AuthenticateAPIKey(r.Context(), key)
	if lethe.ErrorCode(err) == lethe.EUNAUTH {
		return "", refuse()
	} else if err != nil {
		return "", err
	}
	// Digests compared, so neither the secret's length nor which secret
	// matched shows in the timing; every secret is tried.
	given := sha256.Sum256([]byte(secret))
	match := 0
	for _, s := range secrets {
		want := sha256.Sum256(s)
		match |= subtle.ConstantTimeCompare(given[:], want[:])
	}
	if match != 1 {
		return "", refuse()
	}
	if err := auth.Allow(r.Context(), h.o.Limiter, RateLimitPrefix, auth.Principal{ClientID: clientID}, h.o.Rules); err != nil {
		return "", err
	}
	return clientID, nil
}

// signed answers v as JSON with status, signed (section 7.4).
func (h *Handler) signed(w http.ResponseWriter, r *http.Request, status int, v any) {
	b := response.Marshal(v)
	sig, err := h.o.Signer.Sign(b)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	w.Header().Set(HeaderDomain, h.o.Domain)
	w.Header().Set(HeaderSignature, sig)
	response.Raw(w, status, b)
}

// CreateResponse is section 7.3's body, members in section 7.4's order.
type CreateResponse struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	ReceivedTime           string `json:"received_time"`
	EncodedRequest         string `json:"encoded_request"`
	SubjectRequestID       string `json:"subject_request_id"`
	ProcessorSignature     string `json:"processor_signature"`
}

// create serves POST /v2/requests (section 7).
func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := request.ReadJSON(r, h.o.MaxBodyBytes)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	clientID, err := h.controller(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	in, err := DecodeRequest(body)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	sub := intake.Submission{
		Actor: lethe.ActorClient, ClientID: clientID, Identities: in.Identities, Regulation: in.Regulation,
		ExternalID: in.SubjectRequestID, IdempotencyKey: in.SubjectRequestID,
	}
	if in.CallbackURL != "" {
		sub.CallbackURL, sub.CallbackFormat = in.CallbackURL, FormatName
	}
	req, outcome, err := h.o.Intake.Submit(ctx, sub)
	if lethe.ErrorCode(err) == lethe.ECONFLICT {
		err = lethe.Errorf(lethe.ECONFLICT, "subject_request_id was already used for a different request")
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	if outcome == intake.Duplicate {
		// lethe keeps one open request per subject and controller; the
		// controller must follow the one it already has, by its id.
		h.WriteError(w, r, lethe.Errorf(lethe.ECONFLICT, "an erasure request for these identities is already open: subject_request_id %s", req.ExternalID))
		return
	}
	// processor_signature signs the request as received, so the
	// controller holds proof of what the processor accepted; the answer
	// itself is signed in X-OpenDSR-Signature.
	reqSig, err := h.o.Signer.Sign(body)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "opendsr request", slog.String("request_id", req.ID),
		slog.String("client_id", clientID), slog.Bool("replayed", outcome == intake.Replayed))
	h.signed(w, r, http.StatusCreated, CreateResponse{
		ControllerID:           clientID,
		ExpectedCompletionTime: rfc3339(req.DueAt),
		ReceivedTime:           rfc3339(req.ReceivedAt),
		EncodedRequest:         base64.StdEncoding.EncodeToString(body),
		SubjectRequestID:       in.SubjectRequestID,
		ProcessorSignature:     reqSig,
	})
}

// find returns the controller's request with subject_request_id id.
func (h *Handler) find(ctx context.Context, clientID, id string) (*lethe.Request, error) {
	if !uuidV4.MatchString(id) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "no request with this subject_request_id")
	}
	req, err := h.o.Store.FindRequestByIdempotencyKey(ctx, clientID, intake.IdempotencyKey(h.o.Keyring, clientID, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "no request with this subject_request_id")
	}
	return req, err
}

// status serves GET /v2/requests/{id} (section 8.1).
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	clientID, err := h.controller(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	req, err := h.find(r.Context(), clientID, r.PathValue("id"))
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	h.signed(w, r, http.StatusOK, StatusResponse{
		ControllerID: clientID, ExpectedCompletionTime: rfc3339(req.DueAt),
		SubjectRequestID: req.ExternalID, RequestStatus: statusOf(req), APIVersion: APIVersion,
	})
}

// CancelResponse is section 9.2's body, members in section 9.3's order.
type CancelResponse struct {
	ControllerID     string `json:"controller_id"`
	SubjectRequestID string `json:"subject_request_id"`
	ReceivedTime     string `json:"received_time"`
	APIVersion       string `json:"api_version"`
}

// cancel serves DELETE /v2/requests/{id} (section 9): only a pending
// request may be cancelled.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	clientID, err := h.controller(r)
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	req, err := h.find(ctx, clientID, r.PathValue("id"))
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	at := h.now()
	_, err = h.o.Intake.Cancel(ctx, store.Scope{ClientID: clientID}, req.ID, lethe.ActorClient, clientID)
	if lethe.ErrorCode(err) == lethe.ECONFLICT {
		if cur, ferr := h.find(ctx, clientID, req.ExternalID); ferr == nil {
			req = cur
		}
		err = lethe.Errorf(lethe.ECONFLICT, "the request is %s; only a pending request can be cancelled", statusOf(req))
	}
	if err != nil {
		h.WriteError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "opendsr request cancelled", slog.String("request_id", req.ID), slog.String("client_id", clientID))
	h.signed(w, r, http.StatusAccepted, CancelResponse{
		ControllerID: clientID, SubjectRequestID: req.ExternalID, ReceivedTime: rfc3339(at), APIVersion: APIVersion,
	})
}
