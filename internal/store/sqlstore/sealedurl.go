package sqlstore

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// sealedPrefix marks a stored callback URL as sealed; rows written before
// URLs were sealed hold them plain and are read as they are.
const sealedPrefix = "sealed:v1:"

// sealURL is the stored form of a callback URL: sealed like an identity,
// because a partner may have built it from the subject's data, and bound to
// its row (place: "requests" or "callback_events", id).
func (q *queries) sealURL(place, id, u string) string {
	if u == "" {
		return ""
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(q.kr.Seal([]byte(u), urlAAD(place, id)))
}

// openURL reverses sealURL.
func (q *queries) openURL(place, id, stored string) (string, error) {
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("%s %s: callback url: %w", place, id, err)
	}
	u, err := q.kr.Open(b, urlAAD(place, id))
	if err != nil {
		return "", fmt.Errorf("%s %s: callback url: %w", place, id, err)
	}
	return string(u), nil
}

func urlAAD(place, id string) []byte {
	return []byte("lethe/callback_url\x00" + place + "\x00" + id)
}
