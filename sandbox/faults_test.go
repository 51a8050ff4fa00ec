package sandbox

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/policy"
	"golang.org/x/sys/unix"
)

// TestListenerClosedEarly stops the supervisor (closing the seccomp
// listener) while the command still runs. What the supervisor decided must
// then fail closed: the kernel answers every notified syscall with ENOSYS,
// so a fork fails and the virtualized /etc/hostname cannot be opened, but
// nothing blocks, the command ends, and nothing of the sandbox is left.
func TestListenerClosedEarly(t *testing.T) {
	requireKernel(t)
	// Warm up: package-level state and the runtime's own descriptors.
	if _, err := Run(&policy.Policy{FSRead: systemRead()}, Command{Path: "/bin/true", Args: []string{"true"}}, nil); err != nil {
		t.Fatal(err)
	}
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inW.Close()
	defer outR.Close()
	fds := openFDs(t) - 2 // inR and outW are the command's, closed below
	p := &policy.Policy{FSRead: systemRead(), MaxProcesses: 8, Env: []string{"PATH=/usr/bin:/bin"}}
	script := "echo ready; read go; /bin/true 2>/dev/null; echo fork=$?; read h </etc/hostname; echo open=$?"
	// The hostname from the supervisor (not from namespaces, as root):
	// its open is what must fail closed.
	sb, err := Start(p, Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdin: inR, Stdout: outW, Stderr: outW},
		&Options{HostnameBySupervisor: true})
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("got %q", sc.Text())
	}
	sb.sup.Stop()
	inW.WriteString("go\n")
	var out []string
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		sb.Kill()
		t.Fatal("the command blocked after the listener closed")
	}
	got := strings.Join(out, "\n")
	if strings.Contains(got, "fork=0") || strings.Contains(got, "open=0") {
		t.Errorf("a notified syscall succeeded without the supervisor:\n%s", got)
	}
	if !strings.Contains(got, "fork=") || !strings.Contains(got, "open=") {
		t.Errorf("the script did not run to its end:\n%s", got)
	}
	if _, err := sb.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("%d descriptors before, %d after: %v", fds, after, testenv.FDs())
	}
	t.Logf("after the listener closed:\n%s", got)
}

// TestCollectWhileSupervisorIdle: the supervisor's receiver waits for
// notifications holding its P (supervisor worker.wait), which a
// stop-the-world must still be able to take. Collections and a forced
// scavenge run while the sandbox sits in a sleep that makes no notified
// call: each must end while the command still runs, not when its exit
// hangs the listener up.
func TestCollectWhileSupervisorIdle(t *testing.T) {
	requireKernel(t)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inW.Close()
	defer outR.Close()
	p := &policy.Policy{FSRead: systemRead(), Env: []string{"PATH=/usr/bin:/bin"}}
	// Notified calls (forks) until the test has seen the sole receiver
	// wait in ppoll, then a read that blocks until the test is done. A
	// receiver decides how to wait as it starts waiting: one that did
	// while a spare worker was still there (the first fork, which starts
	// the watchdog, may start one) waits the Go way until the next
	// notification, so the test asks for forks until it sees ppoll.
	script := "read h </etc/hostname; while read cmd && [ \"$cmd\" = fork ]; do /bin/true; echo ready; done; read done"
	sb, err := Start(p, Command{Path: "sh", Args: []string{"sh", "-c", script}, Stdin: inR, Stdout: outW, Stderr: outW}, nil)
	inR.Close()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		inW.Close()
		sb.Close()
	}()
	sc := bufio.NewScanner(outR)
	// The sole receiver must be waiting in ppoll holding its P; the test
	// means nothing otherwise.
	deadline := time.Now().Add(30 * time.Second)
	for forks := 0; testenv.ThreadsInSyscall(unix.SYS_PPOLL) == 0; forks++ {
		if time.Now().After(deadline) {
			t.Fatalf("no supervisor thread waits in ppoll after %d forks", forks)
		}
		io.WriteString(inW, "fork\n")
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("got %q", sc.Text())
		}
		time.Sleep(10 * time.Millisecond)
	}
	io.WriteString(inW, "stop\n") // the loop ends; the script waits in its last read
	exited := make(chan struct{})
	go func() {
		sb.Wait()
		close(exited)
	}()
	collected := make(chan struct{})
	go func() {
		for i := 0; i < 5; i++ {
			runtime.GC()
		}
		debug.FreeOSMemory()
		close(collected)
	}()
	select {
	case <-collected:
	case <-exited:
		t.Fatal("the command ended before the collections")
	case <-time.After(time.Minute):
		// Not a timing assertion: a stop-the-world takes microseconds;
		// a minute means it waits on the supervisor for good.
		inW.Close()
		<-collected
		t.Fatal("collections waited for the sandbox to end: the supervisor kept its P from a stop-the-world")
	}
	select {
	case <-exited:
		t.Fatal("the command ended before it was told to")
	default:
	}
	inW.Close()
	<-exited
}

// TestOrphansOfAnotherSandbox: two sandboxes in one program. The first
// process of each is a child of the program, sandboxed (no_new_privs and a
// filter), as are the orphans sandboxed processes leave behind; a
// supervisor adopting its orphans took the other sandbox's first process
// for one and killed it at its own end (a regression: 100 sandboxes at once
// lost dozens of commands that way).
func TestOrphansOfAnotherSandbox(t *testing.T) {
	requireKernel(t)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	p := &policy.Policy{FSRead: systemRead(), Env: []string{"PATH=/usr/bin:/bin"}}
	b, err := Start(p, Command{Path: "sh", Args: []string{"sh", "-c", "echo ready; read x; echo done"}, Stdin: inR, Stdout: outW, Stderr: outW}, nil)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || sc.Text() != "ready" {
		inW.Close()
		b.Close()
		t.Fatalf("got %q", sc.Text())
	}
	// The first sandbox's subshell forks and exits at once: its child is
	// an orphan the supervisor adopts.
	for i := 0; i < 5; i++ {
		res, err := Run(p, Command{Path: "sh", Args: []string{"sh", "-c", "(sleep 0.05 &); exit 0"}}, nil)
		if err != nil || res.ExitCode != 0 {
			t.Errorf("orphaning sandbox %d: %v, %+v", i, err, res)
		}
	}
	inW.Write([]byte("x\n"))
	inW.Close()
	res, err := b.Wait()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("the other sandbox: %v, %+v (killed by the orphaning one's teardown?)", err, res)
	}
	if !sc.Scan() || sc.Text() != "done" {
		t.Fatalf("the other sandbox said %q, want done", sc.Text())
	}
}

// TestRingMode runs notified work with the listener polled through the
// io_uring (Options.UseRing): a regression, the reaper once parked in the
// Go poller there and a sandbox hung in its first notified mmap.
func TestRingMode(t *testing.T) {
	requireKernel(t)
	for i := 0; i < 3; i++ {
		done := make(chan struct{})
		var res *Result
		var err error
		go func() {
			defer close(done)
			p := &policy.Policy{FSRead: systemRead(), MaxProcesses: 8, MaxMemory: 256 << 20, Env: []string{"PATH=/usr/bin:/bin"}}
			res, err = Run(p, Command{Path: "sh", Args: []string{"sh", "-c", "for i in 1 2 3 4 5; do /bin/true; read h </etc/hostname; done"}},
				&Options{UseRing: true, Stats: true})
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			// Not a timing assertion: the run takes milliseconds.
			t.Fatal("a sandbox supervised through the ring hung")
		}
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d: %v, %+v", i, err, res)
		}
		if res.Stats.Total == 0 {
			t.Fatalf("run %d: no notification went through the ring", i)
		}
	}
}

// TestTightProcessLimitNoSpares runs more short processes than -P allows
// at once, counting the ones that have exited and not been settled yet:
// under -P 5, sh, seq, xargs -P 2 and its two commands fill every slot, so
// most forks find none free and take the slow path that settles the exits
// itself. Every process must run, and that path must not start a spare
// receiver each time (it did: 279 spares for 600 processes under a limit
// as tight, and 1.15x the time under -P 64).
func TestTightProcessLimitNoSpares(t *testing.T) {
	requireKernel(t)
	// xargs gives each command /dev/null for its input.
	p := &policy.Policy{FSRead: append(systemRead(), "/dev/null"), MaxProcesses: 5, Env: []string{"PATH=/usr/bin:/bin"}}
	const n = 300
	outR, outW, _ := os.Pipe()
	var out []byte
	done := make(chan struct{})
	go func() { out, _ = io.ReadAll(outR); close(done) }()
	res, err := Run(p, Command{Path: "sh", Args: []string{"sh", "-c", "seq 300 | xargs -P 2 -n 1 sh -c 'echo $0'"},
		Stdout: outW, Stderr: outW}, &Options{Stats: true})
	outW.Close()
	<-done
	outR.Close()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%v, %+v, output %q", err, res, out)
	}
	if got := strings.Count(string(out), "\n"); got != n {
		t.Errorf("%d of %d processes ran; output %q", got, n, out)
	}
	// The first worker and the spare of the first fork (the watchdog's
	// start), plus a few: a slow path that finds the lock held (the reaper
	// settling a batch) starts one, and so does a handler stalled for 5 ms
	// on a loaded machine (up to 10 in all under -race here). One per slow
	// path was 138.
	if w := res.Stats.WorkersStarted; w > n/10 {
		t.Errorf("%d receivers started for %d processes under -P 5", w, n)
	}
}
