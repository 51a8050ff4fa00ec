package policy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sandlock/sandlock/bpfprog"
)

// The fuzz targets run over their seeds (f.Add and testdata/fuzz) in every
// `go test`; `go test -fuzz=FuzzX ./policy` explores further. Each checks
// the parser never panics and that what it accepts is well formed.

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1G", "4096", "64MiB", "0", "", "1T", "9223372036854775807", "8388608T", "-1", "1.5G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n <= 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("round trip of %d via %q: %d, %v", n, FormatSize(n), back, err)
		}
	})
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1", "0.5", "abc", "1e3", "NaN", "-0", "1000000000", "0.0000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseTimeout(s); err == nil && d < 0 {
			t.Fatalf("ParseTimeout(%q) = %v", s, d)
		}
	})
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"A=b", "FOO", "=x", "A=b=c", "A=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := ParseEnv(s)
		if err != nil {
			return
		}
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || k+"="+v != s {
			t.Fatalf("ParseEnv(%q) = %q, %q", s, k, v)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"build-1", "a/b", "", strings.Repeat("x", 65), "a b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) != nil {
			return
		}
		if s == "" || len(s) > 64 || strings.ContainsAny(s, "/ \t\n\x00") || !utf8.ValidString(s) {
			t.Fatalf("ValidateName accepted %q", s)
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80", "8080,9000-9005", "*", "0", "65536", "5-3", "1,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prs, err := ParsePorts(s)
		if err != nil {
			return
		}
		if len(prs) == 0 {
			t.Fatalf("ParsePorts(%q): no ranges", s)
		}
		for _, r := range prs {
			if r.Lo == 0 || r.Hi < r.Lo {
				t.Fatalf("ParsePorts(%q): bad range %v", s, r)
			}
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0", "0,2,4-6", "1023", "1024", "3-1", "", "0-1023"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil {
			return
		}
		for _, c := range cpus {
			if c < 0 || c > 1023 {
				t.Fatalf("ParseCPUList(%q) gave CPU %d", s, c)
			}
		}
	})
}

// FuzzSyscallName checks the syscall-name validation --extra-deny-syscall
// uses: whatever it accepts is a syscall of one of the tables.
func FuzzSyscallName(f *testing.F) {
	for _, s := range []string{"ptrace", "mount", "no_such", "", "read\x00", "PTRACE", "clone3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if bpfprog.ValidateSyscallName(s) != nil {
			return
		}
		for _, a := range bpfprog.Arches {
			if _, ok := a.Nr(s); ok {
				return
			}
		}
		t.Fatalf("%q accepted but in no table", s)
	})
}

// FuzzValidate checks that Validate never panics on odd values.
func FuzzValidate(f *testing.F) {
	f.Add("/usr", "x", "FOO=bar", "name", 5, int64(1<<20), 50, "ptrace", "sysv_ipc", "net-tcp")
	f.Add("", "", "=", "a/b", -1, int64(-1), 101, "", "", "")
	f.Fuzz(func(t *testing.T, path, cwd, env, name string, procs int, mem int64, cpu int, deny, allow, prot string) {
		p := &Policy{FSRead: []string{path}, Cwd: cwd, Env: []string{env}, Name: name, MaxProcesses: procs,
			MaxMemory: mem, CPUPercent: cpu, ExtraDenySyscalls: []string{deny}, ExtraAllowSyscalls: []string{allow},
			AllowDegraded: []string{prot}}
		if err := p.Validate(); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Validate: %T %v, want *policy.Error", err, err)
			}
		}
	})
}
