package spawn

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// run starts sh -c script under attr with stdout on a pipe and returns
// what it printed and its wait status.
func run(t *testing.T, attr *Attr, script string) (string, unix.WaitStatus) {
	t.Helper()
	return runArgv(t, attr, "/bin/sh", "sh", "-c", script)
}

func runArgv(t *testing.T, attr *Attr, path string, argv ...string) (string, unix.WaitStatus) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	attr.Files = []int{int(null.Fd()), int(w.Fd()), int(w.Fd())}
	pid, pidfd, err := forkExec(path, argv, []string{"PATH=/usr/bin:/bin"}, attr)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	out, _ := io.ReadAll(r)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	return string(out), ws
}

// forkExec prepares and starts path.
func forkExec(path string, argv, env []string, attr *Attr) (pid, pidfd int, err error) {
	ch, err := Prepare(path, argv, env, attr)
	if err != nil {
		return 0, -1, err
	}
	return ch.Start()
}

func TestForkExec(t *testing.T) {
	dir := t.TempDir()
	attr := &Attr{Dir: dir, Setpgid: true, Pdeathsig: syscall.SIGKILL, LandlockFD: -1}
	out, ws := run(t, attr, `echo "$PWD $(cut -d' ' -f5 /proc/$$/stat) $$"`)
	if ws.ExitStatus() != 0 {
		t.Fatalf("exit %v: %s", ws, out)
	}
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != dir || f[1] != f[2] {
		t.Errorf("want %q, its own process group; got %q", dir, out)
	}
	// Nothing blocked, nothing caught (the runtime's handlers are gone).
	out, _ = runArgv(t, attr, "/bin/cat", "cat", "/proc/self/status")
	var sig []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "SigBlk") || strings.HasPrefix(l, "SigCgt") {
			sig = append(sig, l)
		}
	}
	if d := cmp.Diff([]string{"SigBlk:\t0000000000000000", "SigCgt:\t0000000000000000"}, sig); d != "" {
		t.Errorf("signal state (-want +got):\n%s", d)
	}
}

// TestIgnoredStaysIgnored checks that a signal the parent ignores is
// still ignored in the command, as with syscall.ForkExec.
func TestIgnoredStaysIgnored(t *testing.T) {
	signal.Ignore(syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	out, _ := run(t, &Attr{LandlockFD: -1}, `grep '^SigIgn' /proc/$$/status`)
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(out, "SigIgn:")), 16, 64)
	if err != nil || mask&(1<<(syscall.SIGHUP-1)) == 0 {
		t.Errorf("SIGHUP not ignored in the child: %q", out)
	}
}

func TestErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, _, err := forkExec("/nonexistent", []string{"x"}, nil, &Attr{LandlockFD: -1, Files: []int{0, 1, 2}})
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("exec of a missing file: %v, want ENOENT", err)
	}
	_, _, err = forkExec("/bin/true", []string{"true"}, nil, &Attr{Dir: "/nonexistent", LandlockFD: -1, Files: []int{0, 1, 2}})
	var ce *ChildError
	if !errors.As(err, &ce) || ce.Step != "chdir" || ce.Err != syscall.ENOENT {
		t.Errorf("chdir to a missing directory: %v", err)
	}
	if _, _, err = forkExec("/bin/true", []string{"true"}, nil, &Attr{LandlockFD: -1, Files: make([]int, maxFiles+1)}); err == nil {
		t.Error("too many descriptors accepted")
	}
}

// TestStartAllocatesNothing: Start runs on a thread confined with the
// filter, where an allocation that grows the heap is a notified mmap made
// holding the runtime's heap lock (a deadlock if a worker needs it).
func TestStartAllocatesNothing(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const runs = 5
	var kids []*Child
	for i := 0; i < runs+1; i++ { // AllocsPerRun makes one warm-up run
		ch, err := Prepare("/bin/true", []string{"true"}, nil, &Attr{LandlockFD: -1, Files: []int{0, 1, 2}, Setpgid: true, Pdeathsig: syscall.SIGKILL})
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, ch)
	}
	var pids, pidfds []int
	pids, pidfds = make([]int, 0, runs+1), make([]int, 0, runs+1)
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		pid, pidfd, err := kids[i].Start()
		i++
		if err == nil {
			pids, pidfds = append(pids, pid), append(pidfds, pidfd)
		}
	})
	for k, pid := range pids {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		unix.Close(pidfds[k])
	}
	if len(pids) != runs+1 {
		t.Fatalf("%d of %d starts failed", runs+1-len(pids), runs+1)
	}
	if allocs != 0 {
		t.Errorf("Start allocates %v times per run", allocs)
	}
}
