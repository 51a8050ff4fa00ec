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
	"github.com/sandlock/sandlock/internal/sys"
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
	return collect(t, r, w, pid, pidfd, err)
}

// collect closes w, the child's end of the pipe r, and returns what the
// child wrote there and its wait status, once started (pid, pidfd, err).
func collect(t *testing.T, r, w *os.File, pid, pidfd int, err error) (string, unix.WaitStatus) {
	t.Helper()
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
	t.Run("clone3", testForkExec)
	t.Run("clone", func(t *testing.T) {
		// Kernels before 5.5: clone, and the child's own loop resets the
		// runtime's signal handlers.
		noClone3 = true
		defer func() { noClone3 = false }()
		testForkExec(t)
	})
}

func testForkExec(t *testing.T) {
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
	if _, _, err = forkExec("/bin/true", []string{"true"}, nil, &Attr{LandlockFD: -1, Files: []int{0, 1, 2}, Rlimits: make([]Rlimit, maxRlimits+1)}); err == nil {
		t.Error("too many resource limits accepted")
	}
	// A limit raised above its hard limit (without CAP_SYS_RESOURCE: any
	// raise in a user namespace) or malformed fails the prlimit step.
	bad := []Rlimit{{Resource: unix.RLIMIT_STACK, Limit: unix.Rlimit{Cur: 2, Max: 1}}}
	_, _, err = forkExec("/bin/true", []string{"true"}, nil, &Attr{LandlockFD: -1, Files: []int{0, 1, 2}, Rlimits: bad})
	if !errors.As(err, &ce) || ce.Step != "prlimit" || ce.Err != syscall.EINVAL {
		t.Errorf("soft limit above the hard one: %v, want prlimit: EINVAL", err)
	}
}

// TestRlimits checks that the child sets Attr.Rlimits before its exec.
func TestRlimits(t *testing.T) {
	lims := []Rlimit{
		{Resource: unix.RLIMIT_DATA, Limit: unix.Rlimit{Cur: 80 << 20, Max: 80 << 20}},
		{Resource: unix.RLIMIT_STACK, Limit: unix.Rlimit{Cur: 4 << 20, Max: 64 << 20}},
	}
	out, _ := run(t, &Attr{LandlockFD: -1, Rlimits: lims}, `ulimit -Hd; ulimit -Sd; ulimit -Hs; ulimit -Ss`)
	if want := "81920\n81920\n65536\n4096\n"; out != want {
		t.Errorf("limits in the child: %q, want %q", out, want)
	}
}

// TestStartAllocatesNothing: everything the child reads is built by
// Prepare, and Start, on the launch's critical path, only forks. An
// allocation there would be a conversion made per start, on memory the
// child (which shares it) then reads.
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

// confinedAttr returns an Attr that confines the child as sandlock does:
// capabilities (as root), no_new_privs, the hostname's namespaces, a filter
// with its listener sent over a socket. The filters tell apart which one
// the child installed: the main one allows everything, the fallback (the
// one for a child without the namespaces) fails uname with EPERM.
func confinedAttr(t *testing.T) (*Attr, int) {
	t.Helper()
	nr, ok := unameNr[runtime.GOARCH]
	if !ok {
		t.Skip("no uname number for " + runtime.GOARCH)
	}
	allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	fallback := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pair[0]); unix.Close(pair[1]) })
	return &Attr{LandlockFD: -1, Setpgid: true, Pdeathsig: syscall.SIGKILL, DropCaps: os.Geteuid() == 0, NoNewPrivs: true,
		Hostname: "spawn-test", HostFallback: fallback, Filters: [][]unix.SockFilter{allow},
		SendListener: true, ListenerSock: pair[1]}, pair[0]
}

var unameNr = map[string]uint32{"amd64": 63, "arm64": 160}

// receivedListener returns the descriptor the child sent over sock, and
// what it is.
func receivedListener(t *testing.T, sock int) string {
	t.Helper()
	fd, err := sys.RecvFD(sock, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("no listener received: %v", err)
	}
	defer unix.Close(fd)
	what, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return what
}

const confinedScript = `grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; uname -n 2>&1 || echo "uname failed"; cat /etc/hostname`

// TestConfinedChild checks the confinement the child applies to itself:
// every capability set empty (as root), no_new_privs, the filter, the
// hostname through namespaces, and the listener sent to the parent.
func TestConfinedChild(t *testing.T) {
	attr, sock := confinedAttr(t)
	out, ws := run(t, attr, confinedScript)
	if ws.ExitStatus() != 0 {
		t.Fatalf("exit %v: %s", ws, out)
	}
	want := []string{"NoNewPrivs:\t1", "Seccomp:\t2"}
	if os.Geteuid() == 0 {
		want = append([]string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
			"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"}, want...)
		want = append(want, "spawn-test", "spawn-test")
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if os.Geteuid() != 0 {
		got = got[5:7] // the capabilities of a user, the host's name
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the child's confinement (-want +got):\n%s", d)
	}
	if what := receivedListener(t, sock); what != "anon_inode:seccomp notify" {
		t.Errorf("the descriptor received is %q, not a seccomp listener", what)
	}
}

// TestHostnameFallback forks from a thread without CAP_SYS_ADMIN: the
// namespaces cannot be made, and the child goes on with the fallback
// filter (which the supervisor's virtualization of the hostname relies
// on), never with the main one.
func TestHostnameFallback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a user's fork takes the fallback in TestConfinedChild's run already")
	}
	attr, sock := confinedAttr(t)
	type result struct {
		out   string
		ns    bool
		nsErr error
		err   error
		code  int
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- result{err: err}
			return
		}
		r, w, _ := os.Pipe()
		defer r.Close()
		attr.Files = []int{0, int(w.Fd()), int(w.Fd())}
		attr.DropCaps = false // the thread has none left to drop, nor CAP_SETPCAP
		ch, err := Prepare("/bin/sh", []string{"sh", "-c", confinedScript}, []string{"PATH=/usr/bin:/bin"}, attr)
		if err != nil {
			done <- result{err: err}
			return
		}
		pid, pidfd, err := ch.Start()
		w.Close()
		if err != nil {
			done <- result{err: err}
			return
		}
		out, _ := io.ReadAll(r)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		unix.Close(pidfd)
		done <- result{out: string(out), ns: ch.HostNamespaces(), nsErr: ch.HostNamespacesError(), code: ws.ExitStatus()}
	}()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.ns || !strings.Contains(res.out, "uname failed") || strings.Contains(res.out, "spawn-test") {
		t.Errorf("namespaces made: %v; output:\n%s", res.ns, res.out)
	}
	if !errors.Is(res.nsErr, unix.EPERM) || !strings.HasPrefix(res.nsErr.Error(), "unshare:") {
		t.Errorf("why the namespaces were not made: %v, want unshare's EPERM", res.nsErr)
	}
	if what := receivedListener(t, sock); what != "anon_inode:seccomp notify" {
		t.Errorf("the descriptor received is %q, not a seccomp listener", what)
	}
}

var execveNr = map[string]uint32{"amd64": 59, "arm64": 221}

// TestNoRuntimeHandlersBeforeExec looks at the child in its last moment
// before the exec, when its signals are unblocked already: none of the Go
// runtime's handlers may be left (a signal then would run the parent's
// handler, on memory the child shares with it). The child's filter
// notifies execve, so the child waits there while its /proc status is
// read, with clone3's CLONE_CLEAR_SIGHAND and with the child's own loop.
func TestNoRuntimeHandlersBeforeExec(t *testing.T) {
	nr, ok := execveNr[runtime.GOARCH]
	if !ok {
		t.Skip("no execve number for " + runtime.GOARCH)
	}
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: sys.RetUserNotif},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	for _, clone3 := range []bool{true, false} {
		noClone3 = !clone3
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := Prepare("/bin/true", []string{"true"}, nil, &Attr{LandlockFD: -1, Files: []int{0, 1, 2}, NoNewPrivs: true,
			Filters: [][]unix.SockFilter{filter}, SendListener: true, ListenerSock: pair[1]})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error, 1)
		go func() {
			pid, pidfd, err := ch.Start()
			if err == nil {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
				unix.Close(pidfd)
			}
			started <- err
		}()
		l, err := sys.RecvFD(pair[0], 0)
		unix.Close(pair[0])
		unix.Close(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		var n sys.SeccompNotif
		if err := sys.NotifRecv(l, &n); err != nil {
			t.Fatal(err)
		}
		status, _ := os.ReadFile("/proc/" + strconv.Itoa(int(n.Pid)) + "/status")
		sys.NotifSend(l, &sys.SeccompNotifResp{ID: n.ID, Flags: sys.UserNotifFlagContinue})
		unix.Close(l)
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		var caught []string
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "SigCgt") || strings.HasPrefix(line, "SigBlk") {
				caught = append(caught, line)
			}
		}
		if d := cmp.Diff([]string{"SigBlk:\t0000000000000000", "SigCgt:\t0000000000000000"}, caught); d != "" {
			t.Errorf("clone3 %v: the child's signals at its exec (-want +got):\n%s", clone3, d)
		}
	}
	noClone3 = false
}
