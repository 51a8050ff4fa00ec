package main

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRunArgs feeds `sandlock run` argument vectors (NUL-separated) to the
// parser, which starts nothing: it must never panic, and a refusal is one
// line "sandlock: ..." with an exit code of CLI.md.
func FuzzRunArgs(f *testing.F) {
	for _, s := range []string{
		"-r\x00/usr\x00--\x00true",
		"--env\x00FOO\x00--\x00true",
		"--name\x00a/b\x00--\x00true",
		"-t\x00abc\x00--\x00true",
		"",
		"--bogus",
		"-m\x00512M\x00-P\x0010\x00-e\x00echo hi",
		"--net-allow\x00x:1\x00--\x00true",
		"-rw\x00--\x00true",
		"--cpu\x00101\x00--\x00true",
		"--no-supervisor\x00-m\x001M\x00--\x00true",
		"--status-fd\x00999\x00--\x00true",
		"-e\x00\x00",
		"--timeout=0.5\x00--env=A=b\x00true",
		"-P\x00\x00--\x00true",
		"--name\x00a\nb\x00--\x00true",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\x00")
		}
		var out, errb bytes.Buffer
		plan, code := parseRun(args, &out, &errb)
		if plan != nil {
			if code != 0 || errb.Len() != 0 || len(plan.argv) == 0 || plan.policy.Validate() != nil {
				t.Fatalf("%q: plan with code %d, stderr %q", args, code, errb.String())
			}
			return
		}
		if code == 0 {
			if !strings.HasPrefix(out.String(), "Usage:") {
				t.Fatalf("%q: no plan, code 0, stdout %q", args, out.String())
			}
			return
		}
		msg := errb.String()
		if code != exitUsage && code != exitSandlock || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "sandlock: ") {
			t.Fatalf("%q: code %d, stderr %q", args, code, msg)
		}
	})
}
