package supervisor

import (
	"runtime"
	"testing"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
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
		l, err := sys.SeccompSetFilter(sys.FilterFlagNewListener, []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: bpfprog.OffNr},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(nr), Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActNotify)},
			{Code: unix.BPF_RET | unix.BPF_K, K: uint32(bpfprog.ActAllow)},
		})
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

// TestStopWakesReceivers stops a supervisor whose workers are blocked in
// NOTIF_RECV on a filter that still has a user: Stop must interrupt them
// (a signal with SA_RESTART would leave them there) and return.
func TestStopWakesReceivers(t *testing.T) {
	arch, err := bpfprog.Native()
	if err != nil {
		t.Skip(err)
	}
	for _, workers := range []int{1, 4} {
		s, err := New(Config{Arch: arch, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(listenerOnThread(t), 0); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); s.idle.Load() < int32(workers); {
			if time.Now().After(deadline) {
				t.Fatalf("%d workers never all received", workers)
			}
			time.Sleep(time.Millisecond)
		}
		stopped := make(chan struct{})
		go func() {
			s.Stop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(time.Minute): // a deadlock, not a timing bound
			t.Fatalf("Stop did not return with %d workers in NOTIF_RECV", workers)
		}
		if n := s.nworkers.Load(); n != 0 {
			t.Fatalf("%d workers left after Stop", n)
		}
	}
}
