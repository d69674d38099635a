// Package httprecipe is the "http" connector kind: a SaaS vendor's deletion
// API described by a recipe file instead of Go code. A recipe says how to
// authenticate (bearer, basic, API key in a header, query or body, OAuth2
// client credentials, an HMAC of the body), which field takes which
// identity and how many at once, how to look the vendor's own record ids up
// (with offset, cursor or Link pagination), the erase calls, how to ask
// whether an asynchronous deletion is done, failed or partly done, and how
// to check that nothing is left. Built-in recipes are embedded from
// recipes/; a target may name a file of its own.
//
// The connector reuses the processor connector's HTTP client (netguard
// transport, no redirects, calls in flight, the call budget, the block after
// a 429) and connector/internal/pacing; errors pass through package redact.
//
// docs/recipes.md is the format reference, with a worked example.
package httprecipe
