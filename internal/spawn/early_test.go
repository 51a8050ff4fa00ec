package spawn

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/internal/sys"
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
	if _, err := e.Go(ch); err != nil {
		t.Fatal(err)
	}
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
		pid, err := e.Go(ch)
		if err != nil {
			t.Fatal(err)
		}
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
// or asleep, armed or not, and leaves no descriptor behind (nor closes one
// of the parent's: an unarmed child has no listener to close).
func TestEarlyAbort(t *testing.T) {
	for _, arm := range []bool{false, true} {
		for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
			before := openFDs(t)
			e := startEarly(t)
			earlyMu.Lock()
			earlyOne = e
			earlyMu.Unlock()
			if arm {
				attr, _ := confinedAttr(t)
				if err := e.Arm(attr); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(delay)
			AbortEarly()
			if err := unix.Kill(e.pid, 0); err != unix.ESRCH {
				t.Errorf("armed %v, delay %v: the aborted child is still there (kill: %v)", arm, delay, err)
			}
			if TakeEarly() != nil {
				t.Errorf("armed %v, delay %v: an aborted early child can still be taken", arm, delay)
			}
			if d := cmp.Diff(before, openFDs(t)); d != "" {
				t.Errorf("armed %v, delay %v: descriptors before and after (-before +after):\n%s", arm, delay, d)
			}
			if earlyStackUsed.Load() {
				t.Errorf("armed %v, delay %v: the static stack is still taken", arm, delay)
			}
		}
	}
}

// openFDs lists this process's descriptors but the socket pairs
// confinedAttr makes (closed at the test's end), with what they are.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		what, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if !strings.HasPrefix(what, "socket:") && !strings.HasSuffix(what, "/fd") { // ReadDir's own
			out = append(out, e.Name()+" "+what)
		}
	}
	return out
}

// TestEarlyArmed checks an early child armed before its command (Arm): the
// command is confined as TestEarlyChild's, only its 0, 1 and 2 reach it
// (the child worked in the parent's descriptor table), and the first
// filter's listener is a descriptor of the parent's. Armed and handed its
// command at once, armed while it spins, and armed once it sleeps.
func TestEarlyArmed(t *testing.T) {
	runtime.LockOSThread() // the early child's parent-death signal follows this thread
	defer runtime.UnlockOSThread()
	dir := t.TempDir()
	for _, delay := range []time.Duration{-1, 0, 100 * time.Millisecond} {
		e := startEarly(t)
		attr, sock := confinedAttr(t)
		attr.Files, attr.CloseOthers = []int{0, 1, 2}, true
		if delay >= 0 {
			time.Sleep(delay)
			if err := e.Arm(attr); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
		}
		out := filepath.Join(dir, "out")
		script := "(" + confinedScript + "; ls /proc/self/fd | wc -l) >" + out
		ch, err := Prepare("/bin/sh", []string{"sh", "-c", script}, []string{"PATH=/usr/bin:/bin"}, attr)
		if err != nil {
			t.Fatal(err)
		}
		if delay < 0 {
			if err := e.Arm(attr); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Go(ch); err != nil {
			t.Fatal(err)
		}
		pid, pidfd, err := e.Wait()
		if err != nil {
			t.Fatal(err)
		}
		listener := e.Listener()
		what, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(listener))
		unix.Close(listener)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		unix.Close(pidfd)
		b, _ := os.ReadFile(out)
		if ws.ExitStatus() != 0 {
			t.Fatalf("delay %v: exit %v: %s", delay, ws, b)
		}
		want := []string{"NoNewPrivs:\t1", "Seccomp:\t2"}
		got := strings.Split(strings.TrimSpace(string(b)), "\n")
		if os.Geteuid() == 0 {
			want = append([]string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
				"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"}, want...)
			want = append(want, "spawn-test", "spawn-test")
		} else if len(got) > 5 {
			got = got[5:]
		}
		want = append(want, "4") // ls's own descriptor for the directory makes the fourth
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("delay %v: the armed child's command (-want +got):\n%s", delay, d)
		}
		if what != "anon_inode:seccomp notify" {
			t.Errorf("delay %v: the listener is %q, not a seccomp listener", delay, what)
		}
		if _, err := sys.RecvFD(sock, unix.MSG_DONTWAIT); err == nil {
			t.Errorf("delay %v: an armed child sent a listener over the socket too", delay)
		}
	}
}

// TestEarlyArmedMismatch: an armed child is not handed a command with other
// filters or descriptors; ended, it leaves no listener behind.
func TestEarlyArmedMismatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Attr)
	}{
		{"other filters", func(a *Attr) {
			a.Filters = [][]unix.SockFilter{{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}}
		}},
		{"other descriptors", func(a *Attr) { a.Files = []int{0, 2, 1} }},
	} {
		before := openFDs(t)
		e := startEarly(t)
		attr, _ := confinedAttr(t)
		attr.Files = []int{0, 1, 2}
		if err := e.Arm(attr); err != nil {
			t.Fatal(err)
		}
		other := *attr
		tc.change(&other)
		ch, err := Prepare("/bin/true", []string{"true"}, nil, &other)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Go(ch); err == nil {
			t.Errorf("%s: handed to the armed child", tc.name)
		}
		e.Abort()
		if d := cmp.Diff(before, openFDs(t)); d != "" {
			t.Errorf("%s: descriptors before and after (-before +after):\n%s", tc.name, d)
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

// TestEarlyStacks: the first early child runs on the static stack, one
// forked while it is there on a mapped one; both are given back when the
// children end.
func TestEarlyStacks(t *testing.T) {
	a := startEarly(t)
	b := startEarly(t)
	if !a.static || b.static {
		t.Errorf("static stacks: first %v, second %v; want true, false", a.static, b.static)
	}
	b.Abort()
	a.Abort()
	if earlyStackUsed.Load() {
		t.Error("the static stack is still taken")
	}
	c := startEarly(t)
	defer c.Abort()
	if !c.static {
		t.Error("the static stack was not given back")
	}
}
