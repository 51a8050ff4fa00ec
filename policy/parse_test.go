package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"100K", 100 << 10, true},
		{"512M", 512 << 20, true},
		{"512m", 512 << 20, true},
		{"512MB", 512 << 20, true},
		{"512MiB", 512 << 20, true},
		{"2G", 2 << 30, true},
		{"1T", 1 << 40, true},
		{" 64M ", 64 << 20, true},
		{"", 0, false},
		{"0", 0, false},
		{"0M", 0, false},
		{"-1M", 0, false},
		{"1.5G", 0, false},
		{"M", 0, false},
		{"12X", 0, false},
		{"10iB", 0, false},
		{"9999999999999999999", 0, false},
		{"8388608T", 0, false}, // 2^63: one past the largest
		{"8388607T", 8388607 << 40, true},
		{"1e6", 0, false},
		{"+5M", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{1: "1", 1023: "1023", 1024: "1K", 1536 << 10: "1536K", 512 << 20: "512M", 3 << 40: "3T"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"30", 30 * time.Second, true},
		{"abc", 0, false},
		{"0", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"", 0, false},
		{"1_000", 0, false},
		{"1e10", 0, false},
		{"10000000000", 0, false},
	} {
		got, err := ParseTimeout(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseEnv(t *testing.T) {
	for _, tc := range []struct {
		in, k, v string
		ok       bool
	}{
		{"A=b", "A", "b", true},
		{"A=", "A", "", true},
		{"A=b=c", "A", "b=c", true},
		{"FOO", "", "", false},
		{"=x", "", "", false},
		{"A=b\x00", "", "", false},
	} {
		k, v, err := ParseEnv(tc.in)
		if (err == nil) != tc.ok || k != tc.k || v != tc.v {
			t.Errorf("ParseEnv(%q) = %q, %q, %v", tc.in, k, v, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for in, ok := range map[string]bool{
		"build-42": true, "a": true, strings.Repeat("x", 64): true, "naïve": true,
		"": false, "a/b": false, strings.Repeat("x", 65): false, "a b": false, "a\tb": false,
		"a\x7f": false, "\xff": false,
	} {
		if err := ValidateName(in); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []PortRange
	}{
		{"80", []PortRange{{80, 80}}},
		{"8080,9000-9005", []PortRange{{8080, 8080}, {9000, 9005}}},
		{"*", []PortRange{{1, 65535}}},
		{"65535", []PortRange{{65535, 65535}}},
		{"", nil}, {"0", nil}, {"65536", nil}, {"5-3", nil}, {"a", nil}, {"1,", nil}, {"-", nil}, {"1-2-3", nil},
	} {
		got, err := ParsePorts(tc.in)
		if (err == nil) != (tc.want != nil) {
			t.Errorf("ParsePorts(%q): err %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParsePorts(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"0", []int{0}}, {"0,2,4-6", []int{0, 2, 4, 5, 6}}, {"1023", []int{1023}},
		{"", nil}, {"1024", nil}, {"3-1", nil}, {"a", nil}, {"1,", nil}, {"-1", nil},
	} {
		got, err := ParseCPUList(tc.in)
		if (err == nil) != (tc.want != nil) {
			t.Errorf("ParseCPUList(%q): err %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseCPUList(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParsePositiveInt(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "64": 64, "0": -1, "-3": -1, "": -1, "x": -1, "1073741825": -1, "99999999999999999999": -1} {
		got, err := ParsePositiveInt(in)
		if want < 0 && err == nil || want >= 0 && got != want {
			t.Errorf("ParsePositiveInt(%q) = %d, %v", in, got, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		flag string // "" for valid
	}{
		{Policy{FSRead: []string{"/usr"}}, ""},
		{Policy{FSRead: []string{"usr"}}, "--fs-read"},
		{Policy{FSWrite: []string{"/no/such/dir"}}, "--fs-write"},
		{Policy{Cwd: "/etc/passwd"}, "--cwd"},
		{Policy{Env: []string{"FOO"}}, "--env"},
		{Policy{Name: "a/b"}, "--name"},
		{Policy{MaxProcesses: -1}, "--max-processes"},
		{Policy{CPUPercent: 101}, "--cpu"},
		{Policy{CPUCores: []int{2048}}, "--cpu-cores"},
		{Policy{ExtraDenySyscalls: []string{"no_such_syscall"}}, "--extra-deny-syscall"},
		{Policy{ExtraDenySyscalls: []string{"ptrace"}}, ""},
		{Policy{ExtraAllowSyscalls: []string{"everything"}}, "--extra-allow-syscall"},
		{Policy{Disable: []string{"fs"}}, "--disable"},
		{Policy{AllowDegraded: []string{"net-tcp"}}, ""},
		{Policy{NoSupervisor: true, MaxMemory: 1 << 20}, "--no-supervisor"},
		{Policy{NoSupervisor: true}, ""},
	} {
		err := tc.p.Validate()
		var pe *Error
		switch {
		case tc.flag == "" && err != nil:
			t.Errorf("%+v: %v", tc.p, err)
		case tc.flag != "" && !errors.As(err, &pe):
			t.Errorf("%+v: got %v, want a *policy.Error for %s", tc.p, err, tc.flag)
		case tc.flag != "" && pe.Flag != tc.flag:
			t.Errorf("%+v: error names %s, want %s", tc.p, pe.Flag, tc.flag)
		}
	}
}
