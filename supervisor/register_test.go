package supervisor

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/ring"
)

// TestExitSettledDuringRegistration is the regression test of a process slot
// lost for good (1 fork-bomb run in about 1000): a slow path polling every
// pidfd (a fork at the limit, or the final sweep) found a process dead while
// another worker was still registering it, and recycled the record before
// it held its slot; the registration then took the slot on a recycled
// record, which nothing released. The hook runs that poll at the worst
// moment; every slot must be back at the end.
func TestExitSettledDuringRegistration(t *testing.T) {
	s := newTestSupervisor(t, 4)

	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	unix.Kill(pid, unix.SIGKILL)
	waitZombie(t, pid)

	// Not the sandbox's first process (which the sandbox reaps itself).
	s.root.Store(uint64(s.self.ref()))
	other := s.newWorker(1)
	polled := false
	registerHook = func(*proc) {
		s.reclaimMu.Lock()
		defer s.reclaimMu.Unlock()
		other.pollExits()
		polled = true
	}
	defer func() { registerHook = nil }()
	if p := s.newWorker(0).register(int32(pid), s.selfPid, nil, 0); p == nil {
		t.Fatal("the zombie was not registered")
	}
	registerHook = nil
	if !polled {
		t.Fatal("the hook did not run")
	}
	s.Reap()
	if n := s.procs.InUse(); n != 0 {
		t.Errorf("process slots in use after the exit was settled: %d, want 0", n)
	}
	if procs, forks := s.Live(); procs != 0 || forks != 0 {
		t.Errorf("Live() = %d processes, %d forks; want 0, 0", procs, forks)
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		t.Errorf("process %d was not reaped", pid)
	}
}

// waitZombie waits until pid has exited and not been reaped.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if i := lastParen(b); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return
		}
	}
	t.Fatalf("process %d did not become a zombie", pid)
}

func lastParen(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i
		}
	}
	return -1
}

func itoa(v int) string { return string(appendInt(nil, int64(v))) }

// TestReleaseRootSettledMeanwhile is the regression test of a record
// recycled twice (about 1 fork-bomb run in 1000 ended with slots held and no
// process): the sandbox reaped its first process and released its record,
// while a fork at the limit polled every pidfd, found the first process
// gone and recycled the record first. The release, holding a pointer taken
// before, recycled it again; two processes then shared one record, and one
// of them never gave its slot back.
func TestReleaseRootSettledMeanwhile(t *testing.T) {
	s := newTestSupervisor(t, 4)
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer roots.Delete(int32(pid))
	s.RegisterRoot(pid)
	cmd.Wait() // the sandbox reaps its first process

	s.reclaimMu.Lock()
	released := make(chan struct{})
	go func() {
		defer close(released)
		s.ReleaseRoot()
	}()
	waitBlocked(t, "ReleaseRoot")
	s.newWorker(1).pollExits() // finds the first process gone, settles it
	s.reclaimMu.Unlock()
	<-released

	if n := s.procs.InUse(); n != 0 {
		t.Errorf("process slots in use: %d, want 0", n)
	}
	seen := map[*proc]bool{}
	for i := 0; i < arenaChunk; i++ {
		p := s.arena.alloc()
		if seen[p] {
			t.Fatalf("record %d handed out twice: it was recycled twice", p.idx)
		}
		seen[p] = true
	}
}

// waitBlocked waits until a goroutine running fn is blocked on a mutex.
func waitBlocked(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[sync.Mutex.Lock") && strings.Contains(g, fn) {
				return
			}
		}
	}
	t.Fatalf("%s never blocked on the mutex", fn)
}

// TestDeferredWatches checks that exits reach the supervisor through the
// watches the reaper arms late (armPending), with no slow path involved: a
// process still running when its watch is armed, and one that has exited
// before (its poll completes as it is submitted). Every slot comes back and
// both are reaped.
func TestDeferredWatches(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 8})
	testenv.Require(t, err == nil, "io_uring unavailable")
	r.Close()
	s := newTestSupervisor(t, 8)
	s.root.Store(uint64(s.self.ref())) // neither is the sandbox's first process

	running := exec.Command("sleep", "100")
	exited := exec.Command("true")
	for _, c := range []*exec.Cmd{running, exited} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitZombie(t, exited.Process.Pid)
	w := s.newWorker(0)
	for _, c := range []*exec.Cmd{running, exited} {
		if w.register(int32(c.Process.Pid), s.selfPid, nil, 0) == nil {
			t.Fatalf("process %d not registered", c.Process.Pid)
		}
	}
	waitFor(t, "the exited process's slot", func() bool { return s.procs.InUse() == 1 })
	// The running one's watch is armed by now (the same pass); its exit
	// comes through the ring.
	running.Process.Kill()
	waitFor(t, "the killed process's slot", func() bool { return s.procs.InUse() == 0 })
	for _, c := range []*exec.Cmd{running, exited} {
		waitFor(t, "the reaping of "+itoa(c.Process.Pid), func() bool {
			_, err := os.Stat("/proc/" + itoa(c.Process.Pid))
			return err != nil
		})
	}
}

// waitFor polls cond until it holds, failing after a generous deadline (a
// wait, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: never", what)
}

// newTestSupervisor returns a supervisor of this machine's architecture
// with a process limit, stopped when the test ends. Nothing receives: the
// tests drive its workers' methods themselves.
func newTestSupervisor(t *testing.T, maxProcs int64) *Supervisor {
	t.Helper()
	arch, err := bpfprog.Native()
	testenv.Require(t, err == nil, "no syscall table for this architecture")
	s, err := New(Config{Arch: arch, MaxProcesses: maxProcs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
