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
	// 1..100000. Default 0, which means pipeline.DefaultMaxIdentities
	// (1000): the pipeline owns the default (and this package cannot
	// import it, since the pipeline's tests load configurations).
	MaxIdentities int `yaml:"max_identities"`
}

func (c *Config) validateResolve(bad badFunc) {
	if c.Resolve.MaxIdentities != 0 {
		intRange(bad, "resolve.max_identities", c.Resolve.MaxIdentities, 1, MaxIdentitiesLimit)
	}
}
