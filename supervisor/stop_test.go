package supervisor

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/spawn"
	"github.com/sandlock/sandlock/internal/sys"
	"github.com/sandlock/sandlock/internal/testenv"
	"golang.org/x/sys/unix"
)

// listenerOnThread installs, on a thread of its own that stays alive until
// the test ends, a filter that notifies uname and allows everything else,
// and returns its listener: a filter with a live user, so that nothing but
// Stop can wake a worker blocked in NOTIF_RECV on it.
func listenerOnThread(t *testing.T) int {
	t.Helper()
	arch, err := bpfprog.Native()
	if err != nil {
		t.Skip(err)
	}
	nr, _ := arch.Nr("uname")
	lc := make(chan int)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			lc <- -1
			return
		}
		l, err := sys.SeccompSetFilter(sys.FilterFlagNewListener, unameFilter(nr))
		if err != nil {
			lc <- -1
			return
		}
		lc <- l
		<-done
	}()
	l := <-lc
	testenv.Require(t, l >= 0, "cannot install a seccomp filter with a listener")
	return l
}

// unameFilter notifies uname (syscall nr) and allows everything else.
func unameFilter(nr int) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: bpfprog.OffNr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(nr), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActNotify)},
		{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActAllow)},
	}
}

// listenerProcess starts a process (sh waiting on its stdin) confined with
// unameFilter, as sandlock starts a command, and returns the filter's
// listener and what ends the process and reaps it: the filter has no user
// left then.
func listenerProcess(t *testing.T) (listener int, end func()) {
	t.Helper()
	arch, err := bpfprog.Native()
	if err != nil {
		t.Skip(err)
	}
	nr, _ := arch.Nr("uname")
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	ch, err := spawn.Prepare("/bin/sh", []string{"sh", "-c", "read x"}, nil, &spawn.Attr{LandlockFD: -1, Files: []int{p[0], 2, 2},
		NoNewPrivs: true, Filters: [][]unix.SockFilter{unameFilter(nr)}, SendListener: true, ListenerSock: pair[1]})
	if err != nil {
		t.Fatal(err)
	}
	pid, pidfd, err := ch.Start()
	if err != nil {
		unix.Close(p[1])
		t.Fatal(err)
	}
	var once sync.Once
	end = func() {
		once.Do(func() {
			unix.Close(p[1])
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
			unix.Close(pidfd)
		})
	}
	t.Cleanup(end)
	l, err := sys.RecvFD(pair[0], 0)
	if err != nil {
		t.Fatalf("no listener: %v", err)
	}
	return l, end
}

// receiving starts a supervisor of workers workers on listener and waits
// until they all wait for notifications.
func receiving(t *testing.T, workers, listener int) *Supervisor {
	t.Helper()
	arch, err := bpfprog.Native()
	if err != nil {
		t.Skip(err)
	}
	s, err := New(Config{Arch: arch, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(listener); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); s.idle.Load() < int32(workers); {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers never all received", workers)
		}
		time.Sleep(time.Millisecond)
	}
	return s
}

// TestStopWakesReceivers stops a supervisor whose workers are blocked in
// NOTIF_RECV on a filter that still has a user: Stop must interrupt them
// (a signal with SA_RESTART would leave them there) and return.
func TestStopWakesReceivers(t *testing.T) {
	for _, workers := range []int{1, 4} {
		s := receiving(t, workers, listenerOnThread(t))
		stopWithin(t, s)
		if n := s.nworkers.Load(); n != 0 {
			t.Fatalf("%d workers left after Stop", n)
		}
	}
}

// TestWorkersLeaveHungUpListener ends the only process using the filter
// while workers wait on its listener (as a sandbox ends): the kernel then
// answers every poll (POLLHUP) and every RECV (ENOENT) at once, and a
// worker that took that ENOENT for a task dying mid-notification spun
// until Stop, on the CPU the sandbox's last moments and sandlock's exit
// needed. Each must leave instead.
func TestWorkersLeaveHungUpListener(t *testing.T) {
	for _, workers := range []int{1, 4} {
		l, end := listenerProcess(t)
		s := receiving(t, workers, l)
		end()
		for deadline := time.Now().Add(10 * time.Second); s.nworkers.Load() > 0; { // a spin, not a timing bound
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d workers still receiving on a hung-up listener", s.nworkers.Load(), workers)
			}
			time.Sleep(time.Millisecond)
		}
		s.Stop()
	}
}

// TestSoleWorkerUnlocked checks that the worker waiting holding its P is
// not locked to its thread (locking one made the runtime start its
// template thread at every launch) and that Stop still ends its wait,
// through stopFD; a second worker, which blocks in RECV, is locked.
func TestSoleWorkerUnlocked(t *testing.T) {
	if !holdPOK() {
		t.Skip("needs two Ps for the P-holding wait")
	}
	s := receiving(t, 1, listenerOnThread(t))
	// A worker's tid is set when, and only when, it locks its thread
	// (lock); locked itself is the worker's own.
	s.wmu.Lock()
	tid := s.receivers[0].tid.Load()
	s.wmu.Unlock()
	if tid != 0 {
		t.Errorf("sole worker locked to thread %d; want it unlocked", tid)
	}
	s.startWorker()
	for deadline := time.Now().Add(time.Minute); s.idle.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the second worker never received")
		}
		time.Sleep(time.Millisecond)
	}
	s.wmu.Lock()
	nlocked := 0
	for _, w := range s.receivers {
		if w.tid.Load() > 0 {
			nlocked++
		}
	}
	s.wmu.Unlock()
	if nlocked == 0 {
		t.Error("no worker locked for its blocking RECV")
	}
	stopWithin(t, s)
}

// stopWithin stops s and fails the test if Stop does not return: its
// workers are blocked in a wait only Stop can end.
func stopWithin(t *testing.T, s *Supervisor) {
	t.Helper()
	stopped := make(chan struct{})
	go func() {
		s.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(time.Minute): // a deadlock, not a timing bound
		t.Fatalf("Stop did not return with %d workers receiving", s.nworkers.Load())
	}
}

// TestWaitEndsOnStopFD checks that the P-holding wait ends, as a wait that
// saw something (not as one a signal interrupted), once Stop's eventfd is
// readable: without it only the runtime's preemption signal would end it.
func TestWaitEndsOnStopFD(t *testing.T) {
	if !holdPOK() {
		t.Skip("needs two Ps for the P-holding wait")
	}
	arch, err := bpfprog.Native()
	if err != nil {
		t.Skip(err)
	}
	s, err := New(Config{Arch: arch})
	if err != nil {
		t.Fatal(err)
	}
	s.listener = listenerOnThread(t)
	if s.stopFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s.stopFD)
	if _, err := unix.Write(s.stopFD, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	s.nworkers.Store(1)
	w := s.newWorker(0)
	polled, ok := w.wait()
	if w.raw {
		w.raw = false
		holdingP.Store(false)
	}
	if !polled || !ok {
		t.Fatalf("wait with stopFD readable = polled %v, ok %v; want true, true", polled, ok)
	}
}
