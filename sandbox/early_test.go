package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/internal/spawn"
	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/policy"
)

// TestEarlyChildTaken: with InProcess (the CLI), the sandbox runs its
// command in the early child forked at the program's start
// (internal/early), confined as any, and ends one that does not fit the
// policy, forking as usual. The child is armed (set its hostname and
// installed its filters) before the command is prepared when the policy
// names no syscall to deny and the command's descriptors are sandlock's 0,
// 1 and 2.
func TestEarlyChildTaken(t *testing.T) {
	requireKernel(t)
	testenv.Require(t, os.Geteuid() == 0, "the early child makes the hostname's namespaces as root")
	testenv.Require(t, runtime.GOARCH == "amd64", "the early child is written for amd64")
	runtime.LockOSThread() // the early child's parent-death signal follows this thread
	defer runtime.UnlockOSThread()
	const script = `hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc/self/fd | wc -l`
	dir := t.TempDir()
	for _, tc := range []struct {
		name         string
		p            policy.Policy
		pipe         bool // the command's stdout a pipe, not sandlock's 1
		taken, armed bool
	}{
		{"default", policy.Policy{Name: "early-1"}, false, true, true},
		{"with limits", policy.Policy{Name: "early-2", MaxMemory: 256 << 20, MaxProcesses: 8}, false, true, true},
		{"stdout a pipe", policy.Policy{Name: "early-3"}, true, true, false},
		// capset is one of the child's own steps after its filters.
		{"a syscall denied", policy.Policy{Name: "early-4", ExtraDenySyscalls: []string{"capset"}}, false, true, false},
		{"no supervisor", policy.Policy{NoSupervisor: true}, false, false, false},
	} {
		if err := spawn.StartEarly(); err != nil {
			t.Fatal(err)
		}
		early := spawn.EarlyPid()
		p := tc.p
		p.Env = []string{"PATH=/usr/bin:/bin"}
		p.FSRead = append(systemRead(), "/proc")
		p.FSWrite = []string{dir}
		outFile := filepath.Join(dir, "out")
		cmd := Command{Path: "sh", Args: []string{"sh", "-c", "(" + script + ") >" + outFile}, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		var r *os.File
		if tc.pipe {
			var w *os.File
			r, w, _ = os.Pipe()
			cmd.Args[2], cmd.Stdout = script, w
			defer w.Close()
		}
		sb, err := Start(&p, cmd, &Options{InProcess: true})
		if cmd.Stdout != os.Stdout {
			cmd.Stdout.Close()
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var out []byte
		if r != nil {
			out, _ = io.ReadAll(r)
			r.Close()
		}
		res, err := sb.Wait()
		sb.Close()
		if r == nil {
			out, _ = os.ReadFile(outFile)
		}
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: %v %+v: %s", tc.name, err, res, out)
		}
		if spawn.EarlyPid() != 0 {
			t.Errorf("%s: the early child is still there", tc.name)
			spawn.AbortEarly()
		}
		if taken := sb.pid == early; taken != tc.taken {
			t.Errorf("%s: the command ran in the early child: %v, want %v", tc.name, taken, tc.taken)
		}
		if sb.armed != tc.armed {
			t.Errorf("%s: the early child was armed: %v, want %v", tc.name, sb.armed, tc.armed)
		}
		host := p.Name
		if p.NoSupervisor {
			host, _ = os.Hostname()
		}
		// ls's own descriptor for the directory makes the fourth.
		want := host + "\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n4\n"
		if d := cmp.Diff(want, string(out)); d != "" {
			t.Errorf("%s: the command's view (-want +got):\n%s", tc.name, d)
		}
	}
}
