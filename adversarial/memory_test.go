package adversarial_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandlock/sandlock/internal/testbin"
	"github.com/sandlock/sandlock/internal/testenv"
)

// memoryEscapes are attempts to hold more writable memory than -m allows
// through memory the ledger did not see being made. Each ran past the
// limit before its fix (the numbers are the attacker's own report then).
var memoryEscapes = []struct {
	name  string
	limit string
	args  []string
	// want is the prefix of the attacker's line, or "" when the ledger
	// must kill it (SIGKILL and sandlock's message).
	want      string
	mechanism string
}{
	{"MAP_GROWSDOWN regions grown by faults", "64M", []string{"growsdown", "40"}, "blocked: EPERM",
		"filter: mmap with MAP_GROWSDOWN refused under -m (held 120 MiB under -m 64M)"},
	{"mremap MREMAP_DONTUNMAP keeps the old mapping", "128M", []string{"dontunmap", "30"}, "",
		"ledger: the new mapping is charged whole (held the limit + 16 MiB, RLIMIT_DATA's bound, unseen)"},
}

// TestMemoryEscapes runs each attempt bare (it must hold the memory it
// says: the case proves something) and under its limit.
func TestMemoryEscapes(t *testing.T) {
	requireKernel(t)
	// The MAP_GROWSDOWN control grows each region to 40 MiB, under the
	// hard RLIMIT_STACK it inherits.
	var stack unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &stack); err != nil {
		t.Fatal(err)
	}
	testenv.Require(t, stack.Max >= 64<<20, fmt.Sprintf("hard RLIMIT_STACK %d is below the 64 MiB the MAP_GROWSDOWN control needs", stack.Max))
	att := attacker(t)
	for _, c := range memoryEscapes {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(att, c.args...).Output()
			if err != nil || !bytes.HasPrefix(out, []byte("escaped")) {
				t.Fatalf("bare control run: %q, %v: the case proves nothing", out, err)
			}
			cmd := exec.Command(testbin.Sandlock(t), sandlockArgs(t, "-m", c.limit, "--", att)...)
			cmd.Args = append(cmd.Args, c.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			got := strings.TrimSpace(stdout.String())
			if c.want != "" {
				if err != nil || !strings.HasPrefix(got, c.want) {
					t.Fatalf("under -m %s: %q, %v (stderr %q), want %q (stopped by: %s)", c.limit, got, err, stderr.String(), c.want, c.mechanism)
				}
				return
			}
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 128+int(syscall.SIGKILL) || !strings.Contains(stderr.String(), "sandlock: memory limit "+c.limit+" exceeded by pid ") {
				t.Fatalf("under -m %s: %q, %v, stderr %q: want the ledger's kill (stopped by: %s)", c.limit, got, err, stderr.String(), c.mechanism)
			}
		})
	}
}
