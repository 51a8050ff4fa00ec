package loopback

import (
	"net/netip"
	"testing"
)

var loopbackSeeds = []string{
	"127.0.0.1", "127.255.255.254", "127.1", "127.0.0.01", "128.0.0.1", "0.0.0.0", "1.2.3.4.5",
	"::1", "0:0:0:0:0:0:0:1", "0::1", "::0:1", "0000:0000:0000:0000:0000:0000:0000:0001",
	"::0.0.0.1", "::1%lo", "::1%", "::", "::2", "::ffff:127.0.0.1", "1::", "::1:", ":::1",
	"1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1::", "00001::1", "fe80::1%eth0", "%lo",
	"1.2.3.4%x", "::127.0.0.1", "0:0:0:0:0:0:127.0.0.1", "0:0:0:0:0:127.0.0.1", "", "localhost",
}

// TestIsIP checks IsIP on the seeds against net/netip.
func TestIsIP(t *testing.T) {
	for _, s := range loopbackSeeds {
		if got, want := IsIP(s), netipLoopback(s); got != want {
			t.Errorf("IsIP(%q) = %v, net/netip says %v", s, got, want)
		}
	}
	for _, s := range []string{"127.0.0.1", "::1", "0::1", "::1%lo"} {
		if !IsIP(s) {
			t.Errorf("IsIP(%q) = false", s)
		}
	}
}

// FuzzIsIP compares IsIP with net/netip on any input.
func FuzzIsIP(f *testing.F) {
	for _, s := range loopbackSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsIP(s), netipLoopback(s); got != want {
			t.Fatalf("IsIP(%q) = %v, net/netip says %v", s, got, want)
		}
	})
}

func netipLoopback(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.IsLoopback()
}

// FuzzParse compares the parsers themselves with net/netip: the same
// inputs accepted, the same address.
func FuzzParse(f *testing.F) {
	for _, s := range loopbackSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := netip.ParseAddr(s)
		var got [16]byte
		ok := false
		for i := 0; i < len(s); i++ {
			if s[i] == '.' {
				var v4 [4]byte
				v4, ok = parseIPv4(s)
				got = netip.AddrFrom4(v4).As16()
				break
			}
			if s[i] == ':' {
				got, ok = parseIPv6(s)
				break
			}
			if s[i] == '%' {
				break
			}
		}
		if ok != (err == nil) {
			t.Fatalf("parse(%q) ok = %v, net/netip: %v", s, ok, err)
		}
		if ok && got != want.As16() {
			t.Fatalf("parse(%q) = %v, net/netip: %v", s, got, want)
		}
	})
}
