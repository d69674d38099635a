// Package s2s serves the "s2s" API profile: a server-to-server user deletion
// request authenticated by an API key and an HMAC signature of the body.
//
//	POST /user_deletion_requests
//	X-API-KEY: <api key>
//	Authorization: <hex HMAC-SHA256 of the raw body under the shared secret>
//	Content-Type: application/json
//
//	{"user_id":"12345"}
//
// Answers (bodies byte for byte as in the contract, no trailing newline):
//
//	200 { "id": "<request uuid>" }           accepted; a duplicate of an open
//	                                          request answers that request's id
//	403 { "errors": ["Missing signature"] }  no Authorization header
//	403 { "errors": ["Invalid API key or signature"] }
//	                                          missing, unknown or disabled API
//	                                          key, or a wrong signature: one
//	                                          text for all, so keys can't be probed
//	400 { "errors": ["Request body is shorter than its Content-Length"] }
//	                                          the body ended, or stalled for 5 s,
//	                                          before its declared length
//	404 { "errors": ["Not found"] }          any other path under
//	                                          /user_deletion_requests (a
//	                                          trailing slash included)
//	405 { "errors": ["Method not allowed"] }
//	413 { "errors": ["Request body is larger than 65536 bytes"] }
//	422 { "errors": ["user_id is missing"] } absent, null, empty or blank
//	422 { "errors": ["<what is wrong>"] }   any other bad body: not JSON, not
//	                                          an object, invalid UTF-8, a
//	                                          duplicate or unknown member,
//	                                          user_id not a string, longer than
//	                                          256 bytes or with control characters
//	429 { "errors": ["Too many requests"] }  with Retry-After (seconds): over
//	                                          the rate limit, or too many failed
//	                                          sign-ins (below)
//	500 { "errors": ["Internal error"] }     details only in the log
//
// Order of checks, and why:
//
//  1. Size: a declared Content-Length over the limit is refused before
//     reading; an undeclared one is read through http.MaxBytesReader and
//     refused at the first byte over. The signature needs the whole body, so
//     nothing else can come first. Error messages name what is wrong, never
//     a member name or value the caller sent.
//  2. Signature over the exact raw bytes, against every currently valid
//     shared secret of the key's client (two during a rotation's overlap),
//     in constant time. Hex of either case is accepted: it encodes the same
//     256-bit MAC, and some platforms print upper case (Java's "%02X", .NET's
//     "X2"); anything else (a prefix, whitespace inside, a wrong length) is
//     a wrong signature.
//  3. Failed sign-ins (no signature, an unknown key, a wrong signature)
//     are counted per API key and per source address in the memory of
//     each lethe process (auth.Throttle): after 10 failures of a key, or 30
//     from an address, within a minute, that key or address is answered
//     429 for a minute, good signatures included, so a guess made while
//     blocked tells nothing. Messages never say which part was wrong.
//  4. Rate limit, per client, only after authentication: counting
//     unauthenticated requests would let anyone who learned an API key
//     (which travels in a header and lands in logs) use up its owner's
//     allowance; the failed sign-in throttle above bounds that to a minute.
//  5. Body validation, so a well-signed but malformed body is a 422 and
//     counts against the limit.
//
// Content-Type is not checked: the signed bytes are parsed as JSON whatever
// the header says.
//
// Throttling: by default 50 requests per 10 minutes per client; the 51st is
// refused and blocks the client for 10 minutes from that moment. Requests
// made while blocked are refused and do NOT extend the block (so a client
// that keeps retrying is let in on time); when it ends, a new window starts.
// Options.Rules sets the default and per-client overrides. The state is in
// the database (or Redis), so every lethe process shares one limit.
//
// The returned id is the lethe request id. It stays answerable to support for
// a retention period after the request ends (7 days in the contract); that
// purge belongs to the pipeline.
package s2s
