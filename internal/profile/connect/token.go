package connect

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

// OAuth 2.0 error codes of the token endpoint (RFC 6749 5.2), and the two
// it borrows: slow_down (RFC 8628 3.5) for a caller over its limit or
// throttled after failed sign-ins, server_error and
// temporarily_unavailable (RFC 6749 4.1.2.1) for our own failures.
const (
	oauthInvalidRequest       = "invalid_request"
	oauthInvalidClient        = "invalid_client"
	oauthUnsupportedGrantType = "unsupported_grant_type"
	oauthInvalidScope         = "invalid_scope"
	oauthSlowDown             = "slow_down"
	oauthServerError          = "server_error"
	oauthUnavailable          = "temporarily_unavailable"
)

// tokenStatus maps error codes to the token endpoint's statuses: RFC 6749
// answers 400 to every client error but a failed client authentication
// (401); the transport-level refusals keep their own statuses.
var tokenStatus = map[string]int{
	lethe.EINVALID:                http.StatusBadRequest,
	lethe.EFORBIDDEN:              http.StatusBadRequest,
	oauthUnsupportedGrantType:     http.StatusBadRequest,
	oauthInvalidScope:             http.StatusBadRequest,
	lethe.EUNAUTH:                 http.StatusUnauthorized,
	lethe.ETOOLARGE:               http.StatusRequestEntityTooLarge,
	lethe.EUNSUPPORTED:            http.StatusUnsupportedMediaType,
	response.CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	lethe.ENOTFOUND:               http.StatusNotFound,
	lethe.ERATELIMIT:              http.StatusTooManyRequests,
	lethe.EUNAVAILABLE:            http.StatusServiceUnavailable,
	lethe.EINTERNAL:               http.StatusInternalServerError,
}

// oauthCode is the RFC 6749 "error" value of a code of tokenStatus.
func oauthCode(code string) string {
	switch code {
	case oauthUnsupportedGrantType, oauthInvalidScope:
		return code
	case lethe.EUNAUTH:
		return oauthInvalidClient
	case lethe.ERATELIMIT:
		return oauthSlowDown
	case lethe.EUNAVAILABLE:
		return oauthUnavailable
	case lethe.EINTERNAL:
		return oauthServerError
	}
	return oauthInvalidRequest
}

// tokenErrorBody is RFC 6749 5.2's error answer.
type tokenErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func tokenBody(code, message string) []byte {
	return response.Marshal(tokenErrorBody{Error: oauthCode(code), ErrorDescription: message})
}

// grantError is an error of the token request that RFC 6749 names apart
// from invalid_request; it unwraps to an EINVALID so that every decoding
// error stays a 400 for code that knows only lethe's codes.
type grantError struct {
	oauth string
	err   *lethe.Error
}

func (e *grantError) Error() string { return e.err.Error() }
func (e *grantError) Unwrap() error { return e.err }

func newGrantError(oauth, format string, args ...any) error {
	return &grantError{oauth: oauth, err: lethe.Errorf(lethe.EINVALID, format, args...)}
}

// tokenErrorCode picks the code the token endpoint answers err under.
func tokenErrorCode(err error) error {
	if ge, ok := errors.AsType[*grantError](err); ok {
		return &lethe.Error{Code: ge.oauth, Message: ge.err.Message}
	}
	return err
}

// tokenResponse is the OAuth token answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	CreatedAt   int64  `json:"created_at"`
}

// token serves POST /v2/oauth/token: the client credentials grant, with
// the parameters in a JSON body (this profile's original form) or, as
// RFC 6749 4.4 has it, in an application/x-www-form-urlencoded body, and
// the client authenticated by client_id and client_secret in the body or
// by HTTP Basic (2.3.1), never both.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fail := func(err error) { h.tokenErrors.Write(w, r, tokenErrorCode(err)) }
	if err := credentialsInURL(r); err != nil {
		fail(err)
		return
	}
	req, err := h.readTokenRequest(r)
	if err != nil {
		fail(err)
		return
	}
	attempt := auth.AttemptOf(r, "connect", req.ClientID)
	if err := h.throttle.Check(attempt); err != nil {
		fail(err)
		return
	}
	clientID, err := h.o.Clients.AuthenticateOAuth(ctx, req.ClientID, req.ClientSecret)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EUNAUTH {
			err = lethe.Errorf(lethe.EUNAUTH, "invalid client credentials")
			if terr := h.throttle.Fail(attempt); terr != nil {
				err = terr
			}
		}
		fail(err)
		return
	}
	if err := h.allow(r, clientID); err != nil {
		fail(err)
		return
	}
	t, err := h.o.Clients.IssueToken(ctx, clientID, Scope)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Pragma", "no-cache") // RFC 6749 5.1, with Cache-Control: no-store
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: t.Value,
		TokenType:   "Bearer",
		ExpiresIn:   int64(t.ExpiresAt.Sub(t.CreatedAt) / time.Second),
		Scope:       t.Scope,
		CreatedAt:   t.CreatedAt.Unix(),
	})
}

// readTokenRequest reads the token request from the body (JSON or form)
// and the Authorization header, and checks it.
func (h *Handler) readTokenRequest(r *http.Request) (TokenRequest, error) {
	var req TokenRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		form, err := request.ReadForm(r, h.o.MaxBodyBytes)
		if err != nil {
			return TokenRequest{}, err
		}
		// Other parameters are ignored, as RFC 6749 3.2 asks.
		req = TokenRequest{
			ClientID:     form.Get("client_id"),
			ClientSecret: form.Get("client_secret"),
			GrantType:    form.Get("grant_type"),
			Scope:        form.Get("scope"),
		}
	} else {
		if mt != "application/json" {
			return TokenRequest{}, lethe.Errorf(lethe.EUNSUPPORTED, "Content-Type must be application/x-www-form-urlencoded or application/json")
		}
		data, err := request.ReadJSON(r, h.o.MaxBodyBytes)
		if err != nil {
			return TokenRequest{}, err
		}
		if err := unmarshal(data, &req); err != nil {
			return TokenRequest{}, err
		}
	}
	id, secret, present, ok := request.BasicCredentials(r)
	switch {
	case present && !ok:
		return TokenRequest{}, lethe.Errorf(lethe.EUNAUTH, "invalid client credentials")
	case present && (req.ClientID != "" || req.ClientSecret != ""):
		return TokenRequest{}, lethe.Errorf(lethe.EINVALID, "client credentials must be sent one way: in the Authorization header or in the body, not both")
	case present:
		req.ClientID, req.ClientSecret = id, secret
	}
	return req, req.check()
}
