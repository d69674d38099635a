package config

// MaxIdentitiesLimit bounds resolve.max_identities: a subject with more
// linked identities than this is a data map linking unrelated people, not
// one person.
const MaxIdentitiesLimit = 100000

// Resolve bounds how far resolve may walk the data map from the given
// identities.
type Resolve struct {
	// MaxIdentities is how many identities (given and linked) one request
	// may reach; a request reaching more fails before erasing anything,
	// 1..100000. Default 1000 (pipeline.DefaultMaxIdentities).
	MaxIdentities int `yaml:"max_identities"`
}

func (c *Config) validateResolve(bad badFunc) {
	intRange(bad, "resolve.max_identities", c.Resolve.MaxIdentities, 1, MaxIdentitiesLimit)
}
