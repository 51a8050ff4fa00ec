// Package loopback tells loopback IP addresses apart without net/netip,
// whose package initialisation (its unique handles) cost every launch of
// sandlock 25 us, for a check only --pprof makes.
package loopback

// IsIP reports whether s is an IPv4 address in 127.0.0.0/8 (also
// mapped into IPv6, ::ffff:127.x.y.z) or the IPv6 address ::1, with or
// without a zone, in the forms net/netip accepts: it is
// netip.ParseAddr(s).IsLoopback() (FuzzIsIP compares the two).
func IsIP(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.':
			ip, ok := parseIPv4(s)
			return ok && ip[0] == 127
		case ':':
			ip, ok := parseIPv6(s)
			mapped := [12]byte{10: 0xff, 11: 0xff}
			return ok && (ip == [16]byte{15: 1} || [12]byte(ip[:12]) == mapped && ip[12] == 127)
		case '%':
			return false
		}
	}
	return false
}

// parseIPv4 parses a dotted quad: four decimal fields of at most 255,
// without leading zeros.
func parseIPv4(s string) (ip [4]byte, ok bool) {
	val, pos, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return ip, false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return ip, false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' || pos == 3 {
				return ip, false
			}
			ip[pos] = byte(val)
			pos, val, digits = pos+1, 0, 0
		default:
			return ip, false
		}
	}
	if pos < 3 {
		return ip, false
	}
	ip[3] = byte(val)
	return ip, true
}

// parseIPv6 parses an IPv6 address: eight fields of one to four hex
// digits, one "::" standing for at least one zero field, the last two
// fields possibly a dotted quad, and an optional non-empty zone after '%'
// (ignored).
func parseIPv6(s string) (ip [16]byte, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i == len(s)-1 {
				return ip, false
			}
			s = s[:i]
			break
		}
	}
	ellipsis := -1 // where the "::" is, in bytes
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis, s = 0, s[2:]
		if s == "" {
			return ip, true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			d := hexDigit(s[off])
			if d < 0 {
				break
			}
			if off > 3 {
				return ip, false
			}
			acc = acc<<4 | d
		}
		if off == 0 {
			return ip, false
		}
		if off < len(s) && s[off] == '.' {
			// A dotted quad ends the address, in the last 32 bits (or
			// before a "::" has been expanded).
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return ip, false
			}
			v4, ok := parseIPv4(s)
			if !ok {
				return ip, false
			}
			copy(ip[i:], v4[:])
			i, s = i+4, ""
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i, s = i+2, s[off:]
		if s == "" {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return ip, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return ip, false
			}
			ellipsis, s = i, s[1:]
			if s == "" {
				break
			}
		}
	}
	if s != "" {
		return ip, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return ip, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		for j := ellipsis + n - 1; j >= ellipsis; j-- {
			ip[j] = 0
		}
	} else if ellipsis >= 0 {
		return ip, false
	}
	return ip, true
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
