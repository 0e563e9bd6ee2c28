package api

// containsCardNumber reports whether b holds a run of 13 to 19 digits
// (optionally split by single spaces or dashes, as people type them) that
// passes the Luhn check: a raw card number, which parkgate must never
// accept, log or store.
func containsCardNumber(b []byte) bool {
	var digits []byte
	flush := func() bool {
		defer func() { digits = digits[:0] }()
		return len(digits) >= 13 && len(digits) <= 19 && luhn(digits)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case (c == ' ' || c == '-') && len(digits) > 0 && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '9':
			// a separator inside a number
		default:
			if flush() {
				return true
			}
		}
	}
	return flush()
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
