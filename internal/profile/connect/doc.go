// Package connect serves the "connect" API profile: OAuth client-credentials
// tokens and customer deletion requests keyed by a free-form identifier.
//
//	POST /v2/oauth/token
//	     {"client_id","client_secret","grant_type":"client_credentials","scope"}
//	     or the same as application/x-www-form-urlencoded (RFC 6749 4.4),
//	     client_id and client_secret in the body or as HTTP Basic (2.3.1)
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
//	          "summary":{"total","completed","pending","canceled","failed","not_found"}}
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
//	pending    the newest request is received or running
//	failed     the newest request failed: not erased (or not everywhere);
//	           it waits for an operator to re-drive or close it
//	canceled   the newest request was canceled (by the operator): no
//	           deletion will happen unless the client asks again
//	not_found  this client never asked for that identifier
//
// outcome, present once the newest request has one, is lethe's: "erased"
// or "no_match" (completed: data was erased, or nothing was held on that
// identifier) and "ambiguous_subject" (failed: the identifier reaches
// more than one account, nothing was erased, an operator must decide).
//
// extended_until, present when an operator extended the request's due
// date (once, within the law's bound), is the new due date.
//
// "canceled", "failed" and "not_found" go beyond the contract's two values because
// reporting either as "pending" would tell a partner to wait for a deletion
// that will never come. At most 100 identifiers per call
// (Options.MaxStatusIdentifiers); an identifier that could not be submitted
// (empty, too long, control characters) is a 400 naming its index.
//
// The token endpoint answers errors as RFC 6749 5.2 has it, so standard
// OAuth2 clients (golang.org/x/oauth2/clientcredentials in each of its
// auth styles is tested) understand them:
//
//	{"error":"<code>","error_description":"<safe text>"}
//
//	400 invalid_request          bad body or parameter, credentials both in the
//	                             header and the body, or in the URL query
//	400 unsupported_grant_type   grant_type other than client_credentials
//	400 invalid_scope            scope other than connect:compliance
//	401 invalid_client           wrong client_id or client_secret (WWW-Authenticate: Basic)
//	413, 415 invalid_request     body too large; media type neither form nor JSON
//	429 slow_down                over the rate limit or throttled after failed
//	                             sign-ins, with Retry-After
//	500 server_error             details only in the log
//
// Every other error of this profile, on the compliance endpoints and any
// path under /v2/compliance, has the native API's shape:
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
//	404 not_found               another path under /v2/compliance
//	429 rate_limited            with Retry-After (seconds)
//	500 internal                details only in the log
//
// Bodies are decoded strictly (request.UnmarshalStrict): one JSON object in
// valid UTF-8, no unknown or duplicate members, nothing after it.
//
// Rate limits apply per client after authentication, to the token endpoint
// and the compliance endpoints together (DefaultRule, 600 a minute then a
// minute's block, unless Options.Rules says otherwise). Failed sign-ins are
// not counted there but by a throttle (auth.Throttle, in the memory of each
// lethe process): after 10 wrong secrets for one client_id, or 30 failed
// sign-ins (secrets or bearer tokens) from one source address, within a
// minute, that client_id or address is answered 429 for a minute, a right
// secret included. Secrets are compared as keyed hashes in constant time.
package connect
