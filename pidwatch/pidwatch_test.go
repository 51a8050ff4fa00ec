package pidwatch

import (
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandlock/sandlock/internal/testenv"
	"github.com/sandlock/sandlock/ring"
	"golang.org/x/sys/unix"
)

func TestExitsInBatches(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 64})
	testenv.Require(t, err == nil, "io_uring unavailable")
	defer r.Close()
	var mu sync.Mutex
	seen := map[uint64]int{}
	batches := 0
	all := make(chan struct{})
	const n = 50
	l := New(r, 128, func(tokens []uint64) {
		mu.Lock()
		defer mu.Unlock()
		batches++
		for _, tok := range tokens {
			seen[tok]++
		}
		if len(seen) == n {
			close(all)
		}
	}, nil)
	l.Start()
	defer l.Stop()

	// Start n processes blocked on one pipe, so they all exit at once.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for i := 0; i < n; i++ {
		cmd := exec.Command("/bin/sh", "-c", "read x")
		cmd.Stdin = newFile(p[0])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
		if err != nil {
			testenv.Require(t, false, "pidfd_open: "+err.Error())
		}
		defer unix.Close(fd)
		if err := l.Watch(fd, uint64(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(p[0])
	unix.Close(p[1]) // every reader sees EOF and exits
	for _, c := range cmds {
		c.Wait()
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d exits reported", len(seen), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if seen[uint64(1000+i)] != 1 {
			t.Errorf("token %d reported %d times", 1000+i, seen[uint64(1000+i)])
		}
	}
	t.Logf("%d exits in %d batches", n, batches)
}

func TestStopBeforeStart(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 8})
	testenv.Require(t, err == nil, "io_uring unavailable")
	defer r.Close()
	l := New(r, 0, func([]uint64) {}, nil)
	done := make(chan struct{})
	go func() { l.Stop(); l.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop before Start hangs")
	}
}

func TestOtherKinds(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 8})
	testenv.Require(t, err == nil, "io_uring unavailable")
	defer r.Close()
	got := make(chan uint64, 1)
	l := New(r, 0, func([]uint64) { t.Error("an eventfd is not an exit") }, func(c ring.CQE) { got <- c.UserData })
	l.Start()
	defer l.Stop()
	efd, _ := unix.Eventfd(1, unix.EFD_CLOEXEC)
	defer unix.Close(efd)
	r.PollAdd(efd, unix.POLLIN, false, Tag(KindOther, 5))
	r.Submit()
	select {
	case ud := <-got:
		if Kind(ud) != KindOther || ud&tokenMask != 5 {
			t.Fatalf("user data %#x", ud)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no completion")
	}
}

// TestDeferredArming drives the deferred watches the supervisor uses: Wake
// runs the hook on the loop's goroutine, which Arms one process that has
// exited already and one still running; both exits are delivered once (the
// first from the submitting call itself), and the wake-up is not an exit.
func TestDeferredArming(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 16})
	testenv.Require(t, err == nil, "io_uring unavailable")
	defer r.Close()
	exits := make(chan uint64, 8)
	l := New(r, 16, func(tokens []uint64) {
		for _, tok := range tokens {
			exits <- tok
		}
	}, nil)
	l.SetGather(8, time.Millisecond)

	// A process that has exited (a zombie, so that its pidfd opens).
	zombie := exec.Command("/bin/true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	zfd, err := unix.PidfdOpen(zombie.Process.Pid, 0)
	testenv.Require(t, err == nil, "pidfd_open")
	defer unix.Close(zfd)
	var zinfo unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, zfd, &zinfo, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()

	live := exec.Command("/bin/sh", "-c", "read x")
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	live.Stdin = newFile(p[0])
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[0])
	lfd, err := unix.PidfdOpen(live.Process.Pid, 0)
	testenv.Require(t, err == nil, "pidfd_open")
	defer unix.Close(lfd)

	hooked := make(chan struct{}, 4)
	var once sync.Once
	l.SetBeforeReap(func() {
		once.Do(func() {
			if err := l.Arm(zfd, 1); err != nil {
				t.Error(err)
			}
			if err := l.Arm(lfd, 2); err != nil {
				t.Error(err)
			}
			if err := l.Flush(); err != nil {
				t.Error(err)
			}
		})
		hooked <- struct{}{}
	}, nil)
	l.Start()
	defer l.Stop()
	if err := l.Wake(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hooked:
	case <-time.After(10 * time.Second):
		t.Fatal("Wake did not run the hook")
	}
	wantExit(t, exits, 1, "the exited process armed late (the zombie, 1)")
	unix.Close(p[1]) // the live one exits
	live.Wait()
	wantExit(t, exits, 2, "the running process (2)")
	select {
	case tok := <-exits:
		t.Fatalf("unexpected exit %d (a wake-up is not an exit)", tok)
	case <-time.After(20 * time.Millisecond):
	}
}

// wantExit waits for the next exit reported on exits and fails t unless
// it carries token want (what names that process).
func wantExit(t *testing.T, exits <-chan uint64, want uint64, what string) {
	t.Helper()
	select {
	case tok := <-exits:
		if tok != want {
			t.Fatalf("exit %d reported, want %s", tok, what)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the exit of %s was not reported", what)
	}
}

// TestWakeDuringHook is the regression test of deferred watches that were
// never armed: work queued while the hook ran woke the loop with a no-op
// that the same pass reaped, and the loop parked with the work pending
// (xargs then ran into its process limit, every exit found by the slow
// path). While pending reports work, the loop must run the hook again.
func TestWakeDuringHook(t *testing.T) {
	r, err := ring.New(ring.Options{Entries: 16})
	testenv.Require(t, err == nil, "io_uring unavailable")
	defer r.Close()
	l := New(r, 16, func([]uint64) {}, nil)
	l.SetGather(8, time.Millisecond)
	var work atomic.Int32
	calls := make(chan int32, 16)
	l.SetBeforeReap(func() {
		n := work.Swap(0)
		calls <- n
		if n == 1 {
			// A second piece of work arrives now, and wakes the loop.
			if work.Add(1) == 1 {
				l.Wake()
			}
		}
	}, func() bool { return work.Load() > 0 })
	l.Start()
	defer l.Stop()
	work.Add(1)
	l.Wake()
	for _, want := range []int32{1, 1} {
		for {
			select {
			case n := <-calls:
				if n == 0 {
					continue // a pass with nothing to do
				}
				if n != want {
					t.Fatalf("hook took %d pieces of work, want %d", n, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("work queued during the hook was never taken")
			}
			break
		}
	}
}
