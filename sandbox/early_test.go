package sandbox

import (
	"bytes"
	"os"
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
// policy, forking as usual.
func TestEarlyChildTaken(t *testing.T) {
	requireKernel(t)
	testenv.Require(t, os.Geteuid() == 0, "the early child makes the hostname's namespaces as root")
	testenv.Require(t, runtime.GOARCH == "amd64", "the early child is written for amd64")
	runtime.LockOSThread() // the early child's parent-death signal follows this thread
	defer runtime.UnlockOSThread()
	const script = `hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status`
	for _, tc := range []struct {
		name  string
		p     policy.Policy
		taken bool
	}{
		{"default", policy.Policy{FSRead: systemRead(), Name: "early-1"}, true},
		{"with limits", policy.Policy{FSRead: systemRead(), Name: "early-2", MaxMemory: 256 << 20, MaxProcesses: 8}, true},
		{"no supervisor", policy.Policy{FSRead: systemRead(), NoSupervisor: true}, false},
	} {
		if err := spawn.StartEarly(); err != nil {
			t.Fatal(err)
		}
		early := spawn.EarlyPid()
		var out bytes.Buffer
		r, w, _ := os.Pipe()
		p := tc.p
		p.Env = []string{"PATH=/usr/bin:/bin"}
		p.FSRead = append(p.FSRead, "/proc")
		sb, err := Start(&p, Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdout: w}, &Options{InProcess: true})
		w.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out.ReadFrom(r)
		r.Close()
		res, err := sb.Wait()
		sb.Close()
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: %v %+v: %s", tc.name, err, res, out.String())
		}
		if spawn.EarlyPid() != 0 {
			t.Errorf("%s: the early child is still there", tc.name)
			spawn.AbortEarly()
		}
		if taken := sb.pid == early; taken != tc.taken {
			t.Errorf("%s: the command ran in the early child: %v, want %v", tc.name, taken, tc.taken)
		}
		want := p.Name + "\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
		if p.NoSupervisor {
			host, _ := os.Hostname()
			want = host + "\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
		}
		if d := cmp.Diff(want, out.String()); d != "" {
			t.Errorf("%s: the command's view (-want +got):\n%s", tc.name, d)
		}
	}
}
