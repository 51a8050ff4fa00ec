package ring

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sandlock/sandlock/internal/testenv"
	"golang.org/x/sys/unix"
)

func newRing(t testing.TB, o Options) *Ring {
	t.Helper()
	r, err := New(o)
	testenv.Require(t, err == nil, "io_uring unavailable")
	t.Cleanup(func() { r.Close() })
	return r
}

func eventfd(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func signal(t testing.TB, fd int) {
	t.Helper()
	if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
}

func drain(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}

// waitFor reaps until n completions arrived or a deadline passes.
func waitFor(t testing.TB, r *Ring, n int) []CQE {
	t.Helper()
	var got []CQE
	buf := make([]CQE, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(got) < n {
			k, err := r.Wait(buf)
			if err != nil {
				t.Error(err)
				return
			}
			got = append(got, buf[:k]...)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d completions arrived", len(got), n)
	}
	return got
}

func TestPollEventfdOneShot(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	fd := eventfd(t)
	if err := r.PollAdd(fd, unix.POLLIN, false, 42); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if n := r.Reap(make([]CQE, 4)); n != 0 {
		t.Fatalf("completion before the fd was ready: %d", n)
	}
	signal(t, fd)
	got := waitFor(t, r, 1)
	if got[0].UserData != 42 || got[0].Res&unix.POLLIN == 0 || got[0].More() {
		t.Fatalf("completion %+v, want user data 42, POLLIN, no MORE", got[0])
	}
}

func TestPollMultishot(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	if !r.Multishot() {
		testenv.Require(t, false, "kernel without multishot poll (5.13+)")
	}
	fd := eventfd(t)
	if err := r.PollAdd(fd, unix.POLLIN, true, 7); err != nil {
		t.Fatal(err)
	}
	r.Submit()
	for i := 0; i < 3; i++ {
		signal(t, fd)
		got := waitFor(t, r, 1)
		if got[0].UserData != 7 || !got[0].More() {
			t.Fatalf("round %d: %+v, want user data 7 with MORE", i, got[0])
		}
		drain(fd)
	}
	// Remove it: the poll ends with a final completion without MORE.
	if err := r.PollRemove(7, 8); err != nil {
		t.Fatal(err)
	}
	r.Submit()
	got := waitFor(t, r, 2)
	seen := map[uint64]bool{}
	for _, c := range got {
		seen[c.UserData] = true
		if c.UserData == 7 && c.More() {
			t.Errorf("removed poll still has MORE: %+v", c)
		}
	}
	if !seen[7] || !seen[8] {
		t.Fatalf("completions %+v, want the poll's end and the removal's", got)
	}
}

func TestPollPipe(t *testing.T) {
	r := newRing(t, Options{Entries: 8, NoMultishot: true})
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	r.PollAdd(p[0], unix.POLLIN, true, 1) // multishot asked but disabled: one-shot
	r.Submit()
	unix.Close(p[1])
	got := waitFor(t, r, 1)
	if got[0].Res&(unix.POLLHUP|unix.POLLIN) == 0 || got[0].More() {
		t.Fatalf("pipe close gave %+v, want POLLHUP without MORE", got[0])
	}
}

// TestManyFDs polls a thousand eventfds through a ring smaller than the
// number of requests, submitted from many goroutines at once.
func TestManyFDs(t *testing.T) {
	r := newRing(t, Options{Entries: 64})
	const n = 1000
	fds := make([]int, n)
	for i := range fds {
		fds[i] = eventfd(t)
	}
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 10 {
				if err := r.PollAdd(fds[i], unix.POLLIN, false, uint64(i)); err != nil {
					t.Error(err)
					return
				}
				if err := r.Submit(); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	for _, fd := range fds {
		signal(t, fd)
	}
	got := waitFor(t, r, n)
	seen := make([]bool, n)
	for _, c := range got {
		if c.UserData >= n || seen[c.UserData] {
			t.Fatalf("unexpected or duplicate completion %+v", c)
		}
		seen[c.UserData] = true
	}
}

// TestTeardownInFlight closes a ring while polls are armed and a reaper is
// blocked in it: Close must not hang and the fds must stay usable.
func TestTeardownInFlight(t *testing.T) {
	r, err := New(Options{Entries: 16})
	testenv.Require(t, err == nil, "io_uring unavailable")
	fds := make([]int, 10)
	for i := range fds {
		fds[i] = eventfd(t)
		r.PollAdd(fds[i], unix.POLLIN, true, uint64(i))
	}
	r.Submit()
	reaped := make(chan error, 1)
	go func() {
		buf := make([]CQE, 8)
		for {
			n, err := r.Wait(buf)
			if err != nil {
				reaped <- err
				return
			}
			for _, c := range buf[:n] {
				if c.UserData == 999 {
					reaped <- nil
					return
				}
			}
		}
	}()
	// Wake the reaper with a NOP, then close.
	time.Sleep(10 * time.Millisecond)
	r.Nop(999)
	r.Submit()
	select {
	case err := <-reaped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reaper never woke")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if err := r.PollAdd(fds[0], unix.POLLIN, false, 1); err != ErrClosed {
		t.Fatalf("PollAdd after Close: %v, want ErrClosed", err)
	}
	for _, fd := range fds {
		signal(t, fd) // still valid descriptors
	}
}

// BenchmarkPollRoundTrip measures one eventfd wake-up through a multishot
// poll, on one locked thread (the ring's task runs its own task work).
func BenchmarkPollRoundTrip(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(b, Options{Entries: 8})
	fd := eventfd(b)
	buf := make([]CQE, 8)
	if err := r.PollAdd(fd, unix.POLLIN, true, 1); err != nil {
		b.Fatal(err)
	}
	r.Submit()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	var rd [8]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		unix.Write(fd, one)
		if !r.Multishot() {
			r.PollAdd(fd, unix.POLLIN, false, 1)
		}
		if _, err := r.Wait(buf); err != nil {
			b.Fatal(err)
		}
		unix.Read(fd, rd[:])
	}
}

// TestWaitParked: a completion wakes a waiter parked in the Go poller, the
// waiter leaves no thread blocked in io_uring_enter while it waits, and
// closing the ring ends the wait with ErrClosed.
func TestWaitParked(t *testing.T) {
	r, err := New(Options{Entries: 8})
	testenv.Require(t, err == nil, "io_uring unavailable")
	fd := eventfd(t)
	if err := r.PollAdd(fd, unix.POLLIN, false, 7); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int
		err error
		c   CQE
	}
	got := make(chan result, 1)
	buf := make([]CQE, 4)
	go func() {
		n, err := r.WaitParked(buf)
		got <- result{n, err, buf[0]}
	}()
	// Parked: no thread of this process is inside io_uring_enter.
	time.Sleep(50 * time.Millisecond)
	if n := testenv.ThreadsInSyscall(unix.SYS_IO_URING_ENTER); n != 0 {
		t.Fatalf("%d threads blocked in io_uring_enter while parked", n)
	}
	signal(t, fd)
	select {
	case res := <-got:
		if res.err != nil || res.n != 1 || res.c.UserData != 7 {
			t.Fatalf("WaitParked = %d, %v, %+v; want the completion of user data 7", res.n, res.err, res.c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a completion did not wake the parked waiter")
	}
	go func() {
		n, err := r.WaitParked(buf)
		got <- result{n: n, err: err}
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case res := <-got:
		if res.err != ErrClosed {
			t.Fatalf("WaitParked after Close = %d, %v; want ErrClosed", res.n, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the parked wait")
	}
}
