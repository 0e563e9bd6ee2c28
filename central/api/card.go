package api

// containsCardNumber reports whether b holds a run of 13 to 19 digits
// (optionally split by single spaces or dashes, as people type them) that
// passes the Luhn check: a raw card number, which parkgate must never
// accept, log or store. b is a decoded value (see strict.go), or text
// that is not JSON. It allocates nothing: it runs on every value of every
// body.
func containsCardNumber(b []byte) bool {
	var digits [19]byte
	n := 0 // digits in the current run (may exceed len(digits): then no card)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if n < len(digits) {
				digits[n] = c
			}
			n++
		case (c == ' ' || c == '-') && n > 0 && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '9':
			// a separator inside a number
		default:
			if n >= 13 && n <= 19 && luhn(digits[:n]) {
				return true
			}
			n = 0
		}
	}
	return n >= 13 && n <= 19 && luhn(digits[:n])
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}
