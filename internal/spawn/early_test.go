package spawn

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// startEarly makes an early child and takes it.
func startEarly(t *testing.T) *Early {
	t.Helper()
	if !earlySupported {
		t.Skip("no early child on " + runtime.GOARCH)
	}
	if err := StartEarly(); err != nil {
		t.Fatal(err)
	}
	e := TakeEarly()
	if e == nil {
		t.Fatal("TakeEarly after StartEarly: nil")
	}
	if TakeEarly() != nil {
		t.Fatal("the early child taken twice")
	}
	return e
}

// runEarly runs sh -c script in an early child under attr, handed over
// after delay, with stdout on a pipe made after the early child.
func runEarly(t *testing.T, attr *Attr, delay time.Duration, script string) (string, unix.WaitStatus) {
	t.Helper()
	runtime.LockOSThread() // the early child's parent-death signal follows this thread
	defer runtime.UnlockOSThread()
	e := startEarly(t)
	time.Sleep(delay)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	attr.Files = []int{0, int(w.Fd()), int(w.Fd())}
	attr.CloseOthers = true
	if !e.Fits(attr) {
		t.Fatalf("the early child does not fit %+v", attr)
	}
	ch, err := Prepare("/bin/sh", []string{"sh", "-c", script}, []string{"PATH=/usr/bin:/bin"}, attr)
	if err != nil {
		t.Fatal(err)
	}
	e.Go(ch)
	pid, pidfd, err := e.Wait()
	return collect(t, r, w, pid, pidfd, err)
}

// TestEarlyChild checks that a command run by an early child is confined as
// one forked when it starts (TestConfinedChild), in its own process group,
// with no signal blocked or caught, only its three descriptors and the
// parent's CPU mask, whether it is handed over while the child spins or once
// it sleeps on its futex.
func TestEarlyChild(t *testing.T) {
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		attr, sock := confinedAttr(t)
		out, ws := runEarly(t, attr, delay, confinedScript+
			`; echo "pgid $(cut -d' ' -f5 /proc/$$/stat) $$"; ls /proc/self/fd | wc -l; cat /proc/self/status`)
		if ws.ExitStatus() != 0 {
			t.Fatalf("exit %v: %s", ws, out)
		}
		// confinedScript's lines, the group, the descriptors, then of
		// cat's status only its signal state (grep catches SIGSEGV).
		var got []string
		for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if i < 9 || strings.HasPrefix(l, "SigBlk") || strings.HasPrefix(l, "SigCgt") || strings.HasPrefix(l, "Cpus_allowed_list") ||
				!strings.Contains(l, ":") {
				got = append(got, l)
			}
		}
		want := []string{"NoNewPrivs:\t1", "Seccomp:\t2"}
		if os.Geteuid() == 0 {
			want = append([]string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
				"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"}, want...)
			want = append(want, "spawn-test", "spawn-test")
		} else {
			got = got[5:]
		}
		if len(got) < 10 {
			t.Fatalf("delay %v: output:\n%s", delay, out)
		}
		if pg := strings.Fields(got[9]); len(pg) == 3 && pg[1] == pg[2] {
			got[9] = "pgid" // its own group
		}
		// ls's own descriptor for the directory makes the fourth.
		// The CPU mask is the parent's again (awayFromCaller's is undone).
		want = append(want, "pgid", "4", "SigBlk:\t0000000000000000", "SigCgt:\t0000000000000000", cpusAllowed(t))
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("delay %v: the early child's command (-want +got):\n%s", delay, d)
		}
		if what := receivedListener(t, sock); what != "anon_inode:seccomp notify" {
			t.Errorf("delay %v: the descriptor received is %q, not a seccomp listener", delay, what)
		}
	}
}

// TestEarlyErrors: a failing exec or step comes back from Wait as from
// Child.Start, and the child is reaped.
func TestEarlyErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	attr := func(dir string) *Attr {
		return &Attr{Dir: dir, LandlockFD: -1, Files: []int{0, 1, 2}, Setpgid: true, Pdeathsig: syscall.SIGKILL,
			NoNewPrivs: true, DropCaps: os.Geteuid() == 0, Hostname: "early", HostFallback: []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}},
			Filters: [][]unix.SockFilter{{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}}}
	}
	for _, tc := range []struct {
		path, dir, step string
		err             syscall.Errno
	}{
		{"/nonexistent", "", "", syscall.ENOENT},
		{"/bin/true", "/nonexistent", "chdir", syscall.ENOENT},
	} {
		e := startEarly(t)
		ch, err := Prepare(tc.path, []string{"x"}, nil, attr(tc.dir))
		if err != nil {
			t.Fatal(err)
		}
		pid := e.Go(ch)
		_, _, err = e.Wait()
		var ce *ChildError
		switch {
		case !errors.Is(err, tc.err):
			t.Errorf("%s in %q: %v, want %v", tc.path, tc.dir, err, tc.err)
		case tc.step != "" && (!errors.As(err, &ce) || ce.Step != tc.step):
			t.Errorf("%s in %q: %v, want the step %s", tc.path, tc.dir, err, tc.step)
		}
		if err := unix.Kill(pid, 0); err != unix.ESRCH {
			t.Errorf("%s in %q: the child is still there (kill: %v)", tc.path, tc.dir, err)
		}
	}
}

// TestEarlyAbort: an early child nobody takes ends and is reaped, spinning
// or asleep.
func TestEarlyAbort(t *testing.T) {
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		e := startEarly(t)
		earlyMu.Lock()
		earlyOne = e
		earlyMu.Unlock()
		time.Sleep(delay)
		AbortEarly()
		if err := unix.Kill(e.pid, 0); err != unix.ESRCH {
			t.Errorf("delay %v: the aborted child is still there (kill: %v)", delay, err)
		}
		if TakeEarly() != nil {
			t.Errorf("delay %v: an aborted early child can still be taken", delay)
		}
	}
}

// cpusAllowed returns this process's Cpus_allowed_list line.
func cpusAllowed(t *testing.T) string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Cpus_allowed_list") {
			return l
		}
	}
	t.Fatal("no Cpus_allowed_list in /proc/self/status")
	return ""
}
