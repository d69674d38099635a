package processor

// Clock-controlled constructors for the tests: a processor's block and
// budget last minutes, and tests must cross them without sleeping.
var (
	OpenS2SAt     = openS2S
	OpenConnectAt = openConnect
)
