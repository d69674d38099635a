package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/redact"
)

// KindConnect is the connector kind of processors speaking the "connect"
// customer deletion API (OAuth client credentials, POST
// /v2/compliance/customers/delete).
const KindConnect = "processor-connect"

// ConnectOptions configure a processor-connect target.
type ConnectOptions struct {
	Options `yaml:",inline"`
	// ClientID and ClientSecret get the access token. Required; give
	// them as ${VAR}.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Scope asked for with the token. Default "connect:compliance"; "-"
	// sends none.
	Scope string `yaml:"scope"`
}

// ConnectDefaults: the identities must be listed; no call budget (the
// processor's 429s are honoured); a 429 without Retry-After waits a minute.
var ConnectDefaults = Defaults{Block: time.Minute}

const (
	connectPathToken  = "/v2/oauth/token"
	connectPathDelete = "/v2/compliance/customers/delete"
	connectPathStatus = "/v2/compliance/customers/deletion/status"
	// connectMaxStatus is the status endpoint's limit per call.
	connectMaxStatus = 100
)

// ConnectInfo returns the registry entry for processor-connect targets.
func ConnectInfo() connector.Info {
	return connector.Info{Kind: KindConnect, New: func(_ context.Context, t connector.Target) (connector.Connector, error) {
		var o ConnectOptions
		if err := t.DecodeOptions(&o); err != nil {
			return nil, err
		}
		return OpenConnect(t.Name, o)
	}}
}

// OpenConnect returns the connector for a processor-connect target.
func OpenConnect(name string, o ConnectOptions) (*Connector, error) {
	return openConnect(name, o, time.Now)
}

func openConnect(name string, o ConnectOptions, now func() time.Time) (*Connector, error) {
	var errs []error
	if o.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if o.ClientSecret == "" {
		errs = append(errs, errors.New("client_secret is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	switch o.Scope {
	case "":
		o.Scope = "connect:compliance"
	case "-":
		o.Scope = ""
	}
	api := &connectAPI{id: o.ClientID, secret: o.ClientSecret, scope: o.Scope, tokens: NewOAuthTokens(now)}
	return newConnector(name, o.Options, ConnectDefaults, api, now)
}

// connectAPI speaks the connect contract. The access token is shared by
// every call of the target and fetched by one caller at a time.
type connectAPI struct {
	id, secret, scope string
	tokens            *OAuthTokens
}

func (*connectAPI) Object() string      { return "customer_deletion_requests" }
func (*connectAPI) MaxStatusBatch() int { return connectMaxStatus }

// bearer returns a token valid for a while yet (see OAuthTokens.Bearer).
func (a *connectAPI) bearer(ctx context.Context, c *Client, stale string) (string, error) {
	return a.tokens.Bearer(ctx, c, stale, func() Call {
		req := map[string]string{"client_id": a.id, "client_secret": a.secret, "grant_type": "client_credentials"}
		if a.scope != "" {
			req["scope"] = a.scope
		}
		body, _ := json.Marshal(req)
		return Call{Path: connectPathToken, Body: body}
	})
}

// Check gets a token: the base URL answers and the credentials are
// accepted.
func (a *connectAPI) Check(ctx context.Context, c *Client) error {
	_, err := a.bearer(ctx, c, "")
	return err
}

// call POSTs body with a bearer token; on 401 it gets a new token once and
// repeats the call. Other answers are the caller's.
func (a *connectAPI) call(ctx context.Context, c *Client, what, path string, body []byte) (*Response, error) {
	stale := ""
	for try := 0; ; try++ {
		tok, err := a.bearer(ctx, c, stale)
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tok)
		r, err := c.Do(ctx, Call{What: what, Path: path, Header: h, Body: body})
		if err != nil {
			return nil, err
		}
		if r.Status != http.StatusUnauthorized {
			return r, nil
		}
		if try == 1 {
			return nil, connector.Permanent(c.Errorf("%s refused a fresh access token (401)", what))
		}
		stale = tok
	}
}

// errorText reads the profile's error shape, {"error":{"message":"..."}},
// for the task's last error.
func errorText(body []byte, ids []lethe.Identity) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e) // best effort: the status decides
	return redact.String(e.Error.Message, ids)
}

// Submit POSTs {"identifier":"..."}. {"success": false} means a request
// for that customer already exists: submitted all the same.
func (a *connectAPI) Submit(ctx context.Context, c *Client, id lethe.Identity) (string, error) {
	const what = "deletion endpoint"
	body, _ := json.Marshal(map[string]string{"identifier": id.Value})
	r, err := a.call(ctx, c, what, connectPathDelete, body)
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		return "", c.Classify(what, r, errorText(r.Body, []lethe.Identity{id}))
	}
	var ok struct {
		Success *bool `json:"success"`
	}
	if err := json.Unmarshal(r.Body, &ok); err != nil || ok.Success == nil {
		return "", c.Errorf("%s answered %d without a success flag", what, r.Status)
	}
	return "", nil
}

// Status POSTs {"identifiers":[...]} and maps each result.
func (a *connectAPI) Status(ctx context.Context, c *Client, ids []lethe.Identity) ([]State, error) {
	const what = "status endpoint"
	vals := make([]string, len(ids))
	for i, id := range ids {
		vals[i] = id.Value
	}
	body, _ := json.Marshal(map[string][]string{"identifiers": vals})
	r, err := a.call(ctx, c, what, connectPathStatus, body)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, c.Classify(what, r, errorText(r.Body, ids))
	}
	var ans struct {
		Results []struct {
			Identifier string `json:"identifier"`
			Status     string `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(r.Body, &ans); err != nil {
		return nil, c.Errorf("%s answered %d with a body that is not the expected JSON", what, r.Status)
	}
	if len(ans.Results) != len(ids) {
		return nil, c.Errorf("%s answered %d results for %d identifiers", what, len(ans.Results), len(ids))
	}
	out := make([]State, len(ids))
	for i, res := range ans.Results {
		if res.Identifier != vals[i] {
			return nil, c.Errorf("%s answered results in another order than asked", what)
		}
		switch res.Status {
		case "completed":
			out[i] = StateCompleted
		case "canceled":
			out[i] = StateCanceled
		case "not_found":
			out[i] = StateNotFound
		default:
			// "pending", or a state this client does not know: not done,
			// so wait (the task's deadline bounds the wait).
			out[i] = StateSubmitted
		}
	}
	return out, nil
}
