package lethe

import "time"

// ExtensionBound returns the latest due date one extension may give a
// request under reg that is due at due, and false when reg allows no
// extension. GDPR Art. 12(3): the one-month period "may be extended by two
// further months"; CCPA (Cal. Civ. Code 1798.130(a)(2)): the 45 days "may
// be extended once by an additional 45 days". Other regulations a
// deployment configures have no bound lethe knows, so none is extended.
func ExtensionBound(reg Regulation, due time.Time) (time.Time, bool) {
	switch reg {
	case GDPR:
		return due.AddDate(0, 2, 0), true
	case CCPA:
		return due.Add(45 * 24 * time.Hour), true
	}
	return time.Time{}, false
}
