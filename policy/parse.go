package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ParseSize parses a size such as 512M, 2G, 100K or 4096: powers of 1024,
// a plain number is bytes. Units are case-insensitive and may end in B or
// iB (512MB, 512MiB). Zero is refused.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	up := strings.ToUpper(t)
	needUnit := false
	if strings.HasSuffix(up, "IB") {
		up, needUnit = up[:len(up)-2], true
	} else {
		up = strings.TrimSuffix(up, "B")
	}
	shift := 0
	if n := len(up); n > 0 {
		switch up[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift != 0 {
			up = up[:n-1]
		}
	}
	if up == "" || !allDigits(up) || needUnit && shift == 0 {
		return 0, errors.New("not a size (use a number with an optional K, M, G or T suffix, e.g. 512M)")
	}
	v, err := strconv.ParseUint(up, 10, 64)
	if err != nil || v > math.MaxInt64>>shift {
		return 0, errors.New("size too large")
	}
	if v == 0 {
		return 0, errors.New("size must be positive")
	}
	return int64(v) << shift, nil
}

// FormatSize renders n bytes as ParseSize reads it back, with the largest
// exact unit (512M, 1536K).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// ParsePositiveInt parses a decimal integer of at least 1.
func ParsePositiveInt(s string) (int, error) {
	if !allDigits(s) {
		return 0, errors.New("not a whole number")
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > 1<<30 {
		return 0, errors.New("too large")
	}
	if v < 1 {
		return 0, errors.New("must be at least 1")
	}
	return v, nil
}

// ParseTimeout parses a timeout in seconds: a positive number, fractions
// allowed (1, 30, 0.5).
func ParseTimeout(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eExXpP_") || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a number of seconds")
	}
	if f <= 0 {
		return 0, errors.New("must be positive")
	}
	if f > 1e9 {
		return 0, errors.New("too large")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// ParseEnv splits KEY=VALUE. The key must be non-empty and contain neither
// '=' nor NUL; the value must not contain NUL.
func ParseEnv(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return "", "", errors.New("expected KEY=VALUE")
	case k == "":
		return "", "", errors.New("empty variable name")
	case strings.ContainsRune(s, 0):
		return "", "", errors.New("contains a NUL byte")
	}
	return k, v, nil
}

// ValidateName checks a sandbox name: 1 to 64 bytes of printable UTF-8
// without '/' or white space (it is also the hostname inside).
func ValidateName(n string) error {
	switch {
	case n == "":
		return errors.New("empty name")
	case len(n) > 64:
		return fmt.Errorf("longer than 64 bytes (%d)", len(n))
	case strings.ContainsRune(n, '/'):
		return errors.New("must not contain '/'")
	case !utf8.ValidString(n):
		return errors.New("not valid UTF-8")
	}
	for _, r := range n {
		if r <= ' ' || r == 0x7f {
			return errors.New("must not contain spaces or control characters")
		}
	}
	return nil
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// ParsePorts parses "8080,9000-9005" or "*" (every port, 1-65535).
func ParsePorts(s string) ([]PortRange, error) {
	if s == "*" {
		return []PortRange{{1, 65535}}, nil
	}
	if s == "" {
		return nil, errors.New("empty port list")
	}
	var out []PortRange
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %s runs backwards", part)
			}
		}
		out = append(out, PortRange{a, b})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	if !allDigits(s) {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 65535 {
		return 0, fmt.Errorf("port %s out of range 1-65535", s)
	}
	return uint16(v), nil
}

// ParseCPUList parses "0,2,4-6".
func ParseCPUList(s string) ([]int, error) {
	var out []int
	prs, err := parseRanges(s)
	if err != nil {
		return nil, err
	}
	for _, r := range prs {
		for c := r[0]; c <= r[1]; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// parseRanges parses a comma list of numbers and ranges from 0 to 1023.
func parseRanges(s string) ([][2]int, error) {
	if s == "" {
		return nil, errors.New("empty list")
	}
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !allDigits(lo) || (isRange && !allDigits(hi)) {
			return nil, fmt.Errorf("%q is not a CPU number or range", part)
		}
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		if a > 1023 || b > 1023 || b < a {
			return nil, fmt.Errorf("bad CPU range %q", part)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}
