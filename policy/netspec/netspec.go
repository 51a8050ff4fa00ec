// Package netspec parses the targets of --net-allow and --net-deny
// ([tcp://|udp://|icmp://]TARGET[:PORTS]).
//
// It lives apart from package policy because it needs net/netip, whose
// initialisation (its unique handles) cost every launch of sandlock 25 us
// while the network flags are not supported yet: sandlock run does not
// link it.
package netspec

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sandlock/sandlock/policy"
)

// Spec is one --net-allow/--net-deny entry.
type Spec struct {
	// TCP, UDP, ICMP are the protocols it covers (no scheme: TCP and UDP).
	TCP, UDP, ICMP bool
	// Host is a hostname to resolve at start, or "".
	Host string
	// Prefix is the address range (a single address is a /32 or /128);
	// invalid when Host is set or for "*".
	Prefix netip.Prefix
	// Any is true for "*" and for a bare ":PORT".
	Any bool
	// Ports, empty for every port.
	Ports []policy.PortRange
}

// Parse parses [tcp://|udp://|icmp://]TARGET[:PORT[,PORT...]] where
// TARGET is a hostname, an IP, a CIDR or '*'; IPv6 takes brackets when a
// port follows ([::1]:8080); ":443" alone means any address.
func Parse(s string) (Spec, error) {
	var n Spec
	rest := s
	switch {
	case strings.HasPrefix(rest, "tcp://"):
		n.TCP, rest = true, rest[6:]
	case strings.HasPrefix(rest, "udp://"):
		n.UDP, rest = true, rest[6:]
	case strings.HasPrefix(rest, "icmp://"):
		n.ICMP, rest = true, rest[7:]
	case strings.Contains(rest, "://"):
		return n, errors.New("unknown scheme (use tcp://, udp:// or icmp://)")
	default:
		n.TCP, n.UDP = true, true
	}
	if rest == "" {
		return n, errors.New("empty target")
	}
	target, ports := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return n, errors.New("unclosed '['")
		}
		target, ports = rest[1:end], rest[end+1:]
		if ports != "" {
			if !strings.HasPrefix(ports, ":") {
				return n, errors.New("expected ':PORT' after ']'")
			}
			ports = ports[1:]
			if ports == "" {
				return n, errors.New("empty port list")
			}
		}
		if _, err := netip.ParseAddr(strings.Split(target, "/")[0]); err != nil {
			return n, errors.New("bracketed target must be an IPv6 address")
		}
	} else if strings.Count(rest, ":") == 1 {
		target, ports, _ = strings.Cut(rest, ":")
		if ports == "" {
			return n, errors.New("empty port list")
		}
	}
	if ports != "" {
		if n.ICMP {
			return n, errors.New("icmp has no ports")
		}
		pr, err := policy.ParsePorts(ports)
		if err != nil {
			return n, err
		}
		n.Ports = pr
	}
	switch {
	case target == "" || target == "*":
		if target == "" && ports == "" {
			return n, errors.New("empty target")
		}
		n.Any = true
	case strings.Contains(target, "/"):
		p, err := netip.ParsePrefix(target)
		if err != nil {
			return n, fmt.Errorf("bad CIDR %q", target)
		}
		n.Prefix = p.Masked()
	default:
		if a, err := netip.ParseAddr(target); err == nil {
			n.Prefix = netip.PrefixFrom(a, a.BitLen())
		} else if err := validHostname(target); err != nil {
			return n, err
		} else {
			n.Host = strings.ToLower(target)
		}
	}
	return n, nil
}

func validHostname(h string) error {
	if len(h) > 253 {
		return errors.New("hostname too long")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("bad hostname %q", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c == '-' || c == '_' || c >= '0' && c <= '9' || (c|0x20 >= 'a' && c|0x20 <= 'z')
			if !ok || (c == '-' && (i == 0 || i == len(label)-1)) {
				return fmt.Errorf("bad hostname %q", h)
			}
		}
	}
	return nil
}
