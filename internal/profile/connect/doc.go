// Package connect serves the "connect" API profile: OAuth client-credentials
// tokens and customer deletion requests keyed by a free-form identifier.
//
//	POST /v2/oauth/token
//	     {"client_id","client_secret","grant_type":"client_credentials","scope"}
//	  -> 200 {"access_token","token_type":"Bearer","expires_in":86400,
//	          "scope":"connect:compliance","created_at":<unix seconds>}
//	POST /v2/compliance/customers/delete           (Authorization: Bearer)
//	     {"identifier":"..."}
//	  -> 200 {"success": true}   a request was created
//	  -> 200 {"success": false}  this client already has an open request for
//	                             that customer
//	POST /v2/compliance/customers/deletion/status  (Authorization: Bearer)
//	     {"identifiers":["...", ...]}
//	  -> 200 {"results":[{"identifier","status","outcome"?}],
//	          "summary":{"total","completed","pending","canceled","not_found"}}
//
// The success bodies are written byte for byte as the contract prints them
// ({"success": true}, one space after the colon, no trailing newline).
//
// Tokens are opaque (256 random bits), stored only as keyed hashes, valid for
// clients.Config.TokenTTL (24h by default; expires_in says how long).
// created_at is the issue time in Unix seconds, as OAuth servers of this
// style (Doorkeeper) send it. scope may be omitted; when given it must name
// only "connect:compliance", the one scope granted: a token allows these
// endpoints and the native API's client endpoints, nothing else. The same
// token works on the native API (Principal{ClientID}).
//
// The identifier is classified by lethe.ClassifyIdentifier: an email address
// (lower-cased), else an international phone number (E.164), else a user id.
// Requests are made under CCPA by default (Options.Regulation).
//
// Status of an identifier, from this client's newest request for exactly
// that one identity (requests made by other clients are not visible):
//
//	completed  the newest request completed
//	pending    the newest request is received, running or failed (a failed
//	           request is the operator's to resolve; the obligation stands,
//	           so the customer's deletion is reported as not done yet)
//	canceled   the newest request was canceled (by the operator): no
//	           deletion will happen unless the client asks again
//	not_found  this client never asked for that identifier
//
// outcome, present once the newest request has one, is lethe's: "erased"
// or "no_match" (completed: data was erased, or nothing was held on that
// identifier) and "ambiguous_subject" (pending: the identifier reaches
// more than one account, nothing was erased, an operator must decide).
//
// "canceled" and "not_found" go beyond the contract's two values because
// reporting either as "pending" would tell a partner to wait for a deletion
// that will never come. At most 100 identifiers per call
// (Options.MaxStatusIdentifiers); an identifier that could not be submitted
// (empty, too long, control characters) is a 400 naming its index.
//
// Errors, every 4xx and 5xx of this profile, have one shape, the native API's:
//
//	{"error":{"code":"<lethe error code>","message":"<safe text>"}}
//
//	400 invalid_request         bad JSON, missing or invalid field, bad grant_type or scope
//	401 unauthorized            missing, unknown or expired token; wrong client credentials
//	                            (with WWW-Authenticate: Bearer)
//	403 forbidden               client_id, client_secret or access_token in the URL query:
//	                            refused even when right, because URLs are logged
//	405 method_not_allowed
//	413 payload_too_large
//	415 unsupported_media_type  Content-Type is not application/json
//	429 rate_limited            with Retry-After (seconds)
//	500 internal                details only in the log
//
// Bodies are decoded strictly (httpapi.UnmarshalStrict): one JSON object in
// valid UTF-8, no unknown or duplicate members, nothing after it.
//
// Rate limits apply per client after authentication, to the token endpoint
// and the compliance endpoints together (DefaultRule unless Options.Rules
// says otherwise). Failed token requests are not counted: that would let
// anyone who knows a client_id lock its owner out; limit per source address
// in front of lethe if that is a concern.
package connect
