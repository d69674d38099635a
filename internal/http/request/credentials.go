package request

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 9110 11.1).
func BearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// BasicCredentials returns the client id and secret of an
// "Authorization: Basic" header as an OAuth2 client sends them: RFC 6749
// 2.3.1 form-encodes both before joining them with ":", so they are
// decoded again here. present reports whether the header uses the Basic
// scheme at all; ok whether it could be decoded.
func BasicCredentials(r *http.Request) (id, secret string, present, ok bool) {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false, false
	}
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok {
		return "", "", true, false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", true, false
	}
	return id, secret, true, true
}

// ClientAddr is the address a request came from, without the port: the
// key failed sign-ins are counted under per source. It is the peer of the
// connection; behind a reverse proxy that is the proxy, whose forwarding
// headers are not trusted (any client could set them).
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
