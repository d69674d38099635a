// Package redisconn is the connector for Redis (go-redis v9): whole keys,
// hash fields, set and sorted-set members, and keys found by bounded SCAN.
//
// # Data map
//
//	targets:
//	  - name: cache
//	    kind: redis
//	    url: ${CACHE_REDIS_URL}      # redis://[user:pass@]host:6379/0 or rediss://; required
//	    key_prefix: "app:"           # optional, put before every key and pattern
//	    keys:                        # deleted whole (UNLINK)
//	      - session:{user_id}
//	      - cart:{user_id}
//	      - profile:{email}
//	    hashes:                      # fields deleted (HDEL); key and fields are templates
//	      - {key: "prefs:{user_id}", fields: [email, phone]}
//	      - {key: email_index, fields: ["{email}"]}
//	    sets:                        # member removed (SREM)
//	      - {key: newsletter, member: "{email}"}
//	    sorted_sets:                 # member removed (ZREM)
//	      - {key: leaderboard, member: "{user_id}"}
//	    scans:                       # every matching key deleted
//	      - {pattern: "recent:{email}:*", count: 1000, max_iterations: 10000}
//	    default_region: GB           # phones stored as national numbers; optional
//	    follow_limit: 10             # never follow a value reaching more root records; default 10
//	    resolve:                     # optional: keys holding linked identities
//	      - {key: "user_by_email:{email}", type: user_id}           # GET
//	      - {key: "profile:{email}", field: user_id, type: user_id} # HGET
//	      - {key: email_index, field: "{email}", type: user_id, root: true} # an index hash
//	      - {key: "phone_users:{phone}", type: user_id, root: true} # a set: SMEMBERS
//
// {email}, {phone}, {user_id} and {x-...} are replaced by each of the
// subject's values of that type (a template with two placeholders yields
// every combination, at most 1000); a template whose type the subject lacks
// yields nothing. Templates are split once at start, so a value is never
// parsed as a template. Every key template must name an identity, so no
// entry can delete a key shared by everyone; hashes and sets may have a
// fixed key when the field or member names the identity.
//
// # Matching
//
// A hash field or set member template of one placeholder is matched by
// the rule of its identity type (email case_insensitive, phone phone,
// others exact) or the entry's match: option: HSCAN, SSCAN or ZSCAN with a
// glob every stored form matches, each item confirmed by its canonical
// form in Go, and the items found are what HDEL, SREM and ZREM remove. Key
// names are built from the canonical value. An entry whose identity type
// the subject lacks sends no command.
//
// Resolve follows links (GET of a string, HGET of a field, SMEMBERS of a
// set) with what it finds, up to four rounds. Links marked root yield the
// subject's accounts: ResolveSubject (connector.SubjectResolver) counts
// the distinct values they yield as root records, and never follows a
// value reaching more than follow_limit of them (a set larger than that is
// only counted). See docs/datamap.md.
//
// # SCAN
//
// Patterns never go to KEYS. Each runs SCAN MATCH with COUNT count (a hint,
// default 1000) for at most max_iterations calls (default 10000); a
// keyspace too large for that is an error (Plan, Erase and Verify fail
// rather than report a partial count). In a pattern, the identity values
// and key_prefix are glob-escaped (* ? [ ] \ ^ -), so only the operator's
// own wildcards match: the value "a*b@x.com" never matches "aXb@x.com".
//
// # Counts
//
// Plan counts keys that exist, fields and members present, and matching
// keys; Erase reports what UNLINK, HDEL, SREM and ZREM removed, so a
// repeat reports zero. Verify fails, naming entries and counts (never
// keys: they hold identity values), while anything is left. Avoid entries
// that overlap (a key both listed and matched by a scan): Plan would count
// it twice.
package redisconn
