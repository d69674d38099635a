package lethe

import (
	"strings"
	"time"
)

// ShortDuration writes d as a person (or a config file) would: whole hours
// and minutes without zero units, "1h" and "1h30m" rather than
// time.Duration's "1h0m0s" and "1h30m0s". Messages, receipts and config
// errors all use it, so one duration reads the same everywhere.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
