package sqlconn

// LargeTableRows lets the tests build a table just above the threshold.
var LargeTableRows = largeTableRows
