// Package demo builds the shop that `lethe serve --demo` erases from: a
// small database of made-up customers (users, addresses, orders, order
// items, support tickets and invoices) and the data map that describes it
// to the SQL connector.
//
// Everything is generated from a fixed seed by a generator written here,
// so the same people come out on every machine and in every Go version:
// tests and documentation can name them. Emails use the example.com,
// example.net and example.org domains reserved by RFC 2606, and phone
// numbers come from ranges regulators set aside for fiction where one
// exists, so no real person is ever addressed.
package demo

import (
	"fmt"
	"strings"
	"time"
)

// Seed is the generator seed of the demo shop. Changing it changes every
// person, which breaks the examples in docs/demo.md.
const Seed uint64 = 0x1e7e_0de1_e7ed_a7a

// DefaultPeople is how many customers the demo shop holds.
const DefaultPeople = 300

// MaxPeople bounds People: the UK's fiction range has 1000 numbers, and
// phone numbers must stay unique.
const MaxPeople = 2000

// Person is one made-up customer.
type Person struct {
	ID        int64
	FirstName string
	LastName  string
	Email     string // lower case, as the shop stores it
	Phone     string // E.164
	Street    string
	City      string
	Postcode  string
	Country   string // ISO 3166-1 alpha-2
	CreatedAt time.Time
}

// rng is splitmix64: tiny, fast and fully specified, so its stream never
// changes under us the way a library generator's derived methods may.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n). The modulo bias is irrelevant for
// picking names.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

// digits returns n random decimal digits.
func (r *rng) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + r.intn(10)))
	}
	return b.String()
}

var firstNames = []string{
	"Ada", "Alan", "Amara", "Anders", "Aoife", "Beatriz", "Bilal", "Chen", "Chiara", "Dagny",
	"Daniel", "Eitan", "Elena", "Emeka", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines",
	"Ivan", "Jamal", "Jonas", "Julia", "Kai", "Keiko", "Lars", "Leila", "Lucas", "Maeve",
	"Marta", "Mateo", "Mei", "Nadia", "Niamh", "Noah", "Olga", "Omar", "Priya", "Rafael",
	"Rosa", "Sami", "Sofia", "Tariq", "Theo", "Valentina", "Wen", "Yusuf", "Zainab", "Zoe",
}

var lastNames = []string{
	"Abara", "Andersen", "Baptiste", "Becker", "Castillo", "Chowdhury", "Costa", "Dubois", "Eriksson", "Fischer",
	"Garcia", "Haddad", "Ivanova", "Jensen", "Kaur", "Kowalski", "Lambert", "Lindqvist", "Lopez", "Murphy",
	"Nakamura", "Nguyen", "Novak", "Okafor", "O'Brien", "Petrov", "Quinn", "Rossi", "Santos", "Schmidt",
	"Silva", "Tanaka", "Thompson", "Van Dijk", "Weber", "Williams", "Xu", "Yilmaz", "Zhang", "Zielinski",
}

var emailDomains = []string{"example.com", "example.net", "example.org", "mail.example.com", "post.example.org"}

// country holds what differs per country: cities, a postcode shape and a
// phone number generator.
type country struct {
	code     string
	cities   []string
	streets  []string
	postcode func(r *rng) string
	phone    func(r *rng) string
}

var countries = []country{
	{
		code:    "GB",
		cities:  []string{"London", "Leeds", "Bristol", "Glasgow", "Cardiff"},
		streets: []string{"High Street", "Station Road", "Church Lane", "Mill Road", "Queen's Avenue"},
		postcode: func(r *rng) string {
			return fmt.Sprintf("%c%c%d %d%c%c", 'A'+r.intn(26), 'A'+r.intn(26), 1+r.intn(9), r.intn(10), 'A'+r.intn(26), 'A'+r.intn(26))
		},
		// Ofcom reserves 07700 900000-900999 for drama.
		phone: func(r *rng) string { return "+447700900" + r.digits(3) },
	},
	{
		code:     "US",
		cities:   []string{"Springfield", "Portland", "Austin", "Madison", "Raleigh"},
		streets:  []string{"Maple Street", "Oak Avenue", "Pine Road", "Cedar Lane", "Elm Drive"},
		postcode: func(r *rng) string { return r.digits(5) },
		// 555-0100 to 555-0199 are reserved for fiction in every area code.
		phone: func(r *rng) string { return fmt.Sprintf("+1%d55501%s", 201+r.intn(700), r.digits(2)) },
	},
	{
		code:     "FR",
		cities:   []string{"Lyon", "Nantes", "Lille", "Bordeaux", "Toulouse"},
		streets:  []string{"rue de la Paix", "avenue Victor Hugo", "rue des Lilas", "boulevard Voltaire", "place du Marché"},
		postcode: func(r *rng) string { return fmt.Sprintf("%02d%s", 1+r.intn(95), r.digits(3)) },
		// ARCEP reserves 06 39 98 00 00 to 06 39 98 99 99 for fiction.
		phone: func(r *rng) string { return "+3363998" + r.digits(4) },
	},
	{
		code:     "DE",
		cities:   []string{"Berlin", "Hamburg", "Leipzig", "Köln", "München"},
		streets:  []string{"Hauptstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee", "Schulstraße"},
		postcode: func(r *rng) string { return r.digits(5) },
		// The Bundesnetzagentur keeps 0152 28817386 and neighbours for
		// fiction; too few for hundreds of people, so a plausible mobile
		// prefix with random digits instead.
		phone: func(r *rng) string { return "+49176" + r.digits(8) },
	},
	{
		code:     "AU",
		cities:   []string{"Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide"},
		streets:  []string{"George Street", "King Street", "Beach Road", "Park Parade", "Wattle Street"},
		postcode: func(r *rng) string { return fmt.Sprintf("%d%s", 2+r.intn(6), r.digits(3)) },
		// ACMA's fiction ranges (0491 570 006-159, ...) hold too few
		// numbers; a plausible mobile number instead.
		phone: func(r *rng) string { return "+614" + r.digits(8) },
	},
}

// epoch is when the demo shop opened; sign-ups spread over two years.
var epoch = time.Date(2023, time.January, 1, 9, 0, 0, 0, time.UTC)

// People returns n made-up customers with ids 1..n: the same n people for
// the same n, every time (n is capped at MaxPeople). Emails and phone
// numbers are unique among them, since a shared one would link two
// customers and erase both.
func People(n int) []Person {
	n = max(0, min(n, MaxPeople))
	r := &rng{s: Seed}
	out := make([]Person, 0, n)
	emails := map[string]bool{}
	phones := map[string]bool{}
	for i := range n {
		first, last := r.pick(firstNames), r.pick(lastNames)
		c := countries[r.intn(len(countries))]
		p := Person{
			ID:        int64(i + 1),
			FirstName: first,
			LastName:  last,
			Street:    fmt.Sprintf("%d %s", 1+r.intn(180), r.pick(c.streets)),
			City:      r.pick(c.cities),
			Postcode:  c.postcode(r),
			Country:   c.code,
			CreatedAt: epoch.Add(time.Duration(r.intn(730*24*60)) * time.Minute),
		}
		if c.code == "FR" || c.code == "DE" {
			p.Street = fmt.Sprintf("%s %d", r.pick(c.streets), 1+r.intn(120))
		}
		p.Email = email(r, first, last, emails)
		for {
			p.Phone = c.phone(r)
			if !phones[p.Phone] {
				phones[p.Phone] = true
				break
			}
		}
		out = append(out, p)
	}
	return out
}

// email makes an address in one of the shapes people really use, adding
// digits until it is unused.
func email(r *rng, first, last string, used map[string]bool) string {
	f, l := localPart(first), localPart(last)
	var local string
	switch r.intn(5) {
	case 0:
		local = f + "." + l
	case 1:
		local = f[:1] + "." + l
	case 2:
		local = f + l + r.digits(2)
	case 3:
		local = f + "_" + l
	default:
		local = l + "." + f
	}
	domain := r.pick(emailDomains)
	e := local + "@" + domain
	for used[e] {
		e = local + r.digits(2) + "@" + domain
	}
	used[e] = true
	return e
}

// localPart lower-cases a name and keeps only what is safe in an address
// without quoting: "O'Brien" becomes "obrien", "Van Dijk" "vandijk".
func localPart(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	return b.String()
}
