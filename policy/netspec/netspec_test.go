package netspec

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/policy"
)

func TestParse(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		in   string
		want *Spec // nil: an error
	}{
		{"example.com:443", &Spec{TCP: true, UDP: true, Host: "example.com", Ports: []policy.PortRange{{Lo: 443, Hi: 443}}}},
		{"tcp://10.0.0.0/8", &Spec{TCP: true, Prefix: pfx("10.0.0.0/8")}},
		{"tcp://10.1.2.3/8", &Spec{TCP: true, Prefix: pfx("10.0.0.0/8")}},
		{"udp://1.1.1.1:53", &Spec{UDP: true, Prefix: pfx("1.1.1.1/32"), Ports: []policy.PortRange{{Lo: 53, Hi: 53}}}},
		{"icmp://*", &Spec{ICMP: true, Any: true}},
		{":443", &Spec{TCP: true, UDP: true, Any: true, Ports: []policy.PortRange{{Lo: 443, Hi: 443}}}},
		{"[::1]:8080", &Spec{TCP: true, UDP: true, Prefix: pfx("::1/128"), Ports: []policy.PortRange{{Lo: 8080, Hi: 8080}}}},
		{"::1", &Spec{TCP: true, UDP: true, Prefix: pfx("::1/128")}},
		{"*:80,443", &Spec{TCP: true, UDP: true, Any: true, Ports: []policy.PortRange{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}}}},
		{"Example.COM", &Spec{TCP: true, UDP: true, Host: "example.com"}},
		{"", nil}, {"ftp://x", nil}, {"icmp://1.2.3.4:80", nil}, {"[::1", nil}, {"[::1]80", nil},
		{"[example.com]:80", nil}, {"host:", nil}, {"10.0.0.0/33", nil}, {"bad_host-:80", nil},
		{"-a.com", nil}, {"a..b", nil}, {"tcp://", nil}, {":", nil}, {strings.Repeat("a", 64) + ".com", nil},
	} {
		got, err := Parse(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(*tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"example.com:443", "tcp://10.0.0.0/8", "udp://1.1.1.1:53", "icmp://*", ":443",
		"[::1]:8080", "::1", "*:80,443", "", "ftp://x", "[::1", "10.0.0.0/33", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		targets := 0
		if n.Host != "" {
			targets++
		}
		if n.Prefix.IsValid() {
			targets++
		}
		if n.Any {
			targets++
		}
		if targets != 1 || !(n.TCP || n.UDP || n.ICMP) || n.ICMP && len(n.Ports) > 0 {
			t.Fatalf("Parse(%q) = %+v", s, n)
		}
	})
}
