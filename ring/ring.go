// Package ring is a small io_uring: it maps the rings, submits poll requests
// from many goroutines without a lock, and reaps completions in batches.
//
// It is built on github.com/iceber/iouring-go/syscall (setup, enter, the
// SQE and CQE layouts); the mapping, submission and reaping are this
// package's own. The package knows nothing about seccomp: it polls file
// descriptors (eventfds, pipes, pidfds, a seccomp listener) and reports
// their readiness as completions carrying the caller's user data.
//
// Concurrency: any number of goroutines may submit at once (slots are
// claimed with compare-and-swap and published in order); exactly one
// goroutine may reap.
package ring

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	iosys "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// Kernel constants missing from the iceber syscall package.
const (
	pollAddMulti     = 1 << 0  // IORING_POLL_ADD_MULTI, in sqe.len
	cqeFMore         = 1 << 1  // IORING_CQE_F_MORE
	featRsrcTags     = 1 << 10 // IORING_FEAT_RSRC_TAGS (5.13, the release that added multishot poll)
	sqeSize          = 64
	cqeSize          = 16
	enterGetEvents   = 1 << 0
	setupClamp       = 1 << 4
	setupSubmitAll   = 1 << 7
	asyncCancelAll   = 1 << 1 // IORING_ASYNC_CANCEL_ALL (5.19)
	asyncCancelAny   = 1 << 2
	maxSpinsPerClaim = 64
)

// ErrClosed is returned by operations on a closed ring.
var ErrClosed = errors.New("ring: closed")

// ErrFull is returned when the submission queue has no free slot even after
// submitting what it holds.
var ErrFull = errors.New("ring: submission queue full")

// CQE is one completion.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// More reports whether a multishot request stays armed after this completion.
func (c CQE) More() bool { return c.Flags&cqeFMore != 0 }

// Options configures New.
type Options struct {
	// Entries is the submission queue size (rounded up to a power of two by
	// the kernel); the completion queue is twice as large.
	Entries uint32
	// NoMultishot forces one-shot polls even where the kernel has multishot
	// (for tests and measurements).
	NoMultishot bool
}

// Ring is an io_uring instance.
type Ring struct {
	fd        int
	multishot bool
	closed    atomic.Bool

	mem  []byte // SQ and CQ rings (one mapping with IORING_FEAT_SINGLE_MMAP)
	cmem []byte // CQ ring when mapped separately
	smem []byte // SQE array

	sqHead, sqTail, sqMask, sqEntries, sqFlags *uint32
	sqArray                                    unsafe.Pointer
	sqes                                       unsafe.Pointer

	cqHead, cqTail, cqMask *uint32
	cqes                   unsafe.Pointer

	claimed   atomic.Uint32 // next SQ slot to hand out
	published atomic.Uint32 // slots below this are visible to the kernel

	pollOnce sync.Once
	pollFile *os.File // a non-blocking duplicate of fd in the Go poller (WaitParked)
	pollErr  error
}

// New creates a ring.
func New(o Options) (*Ring, error) {
	if o.Entries == 0 {
		o.Entries = 256
	}
	var p iosys.IOURingParams
	p.Flags = setupClamp | setupSubmitAll
	fd, err := iosys.IOURingSetup(uint(o.Entries), &p)
	if err != nil {
		// SUBMIT_ALL is 5.18+; retry without it.
		p = iosys.IOURingParams{Flags: setupClamp}
		fd, err = iosys.IOURingSetup(uint(o.Entries), &p)
		if err != nil {
			return nil, fmt.Errorf("io_uring_setup: %w", err)
		}
	}
	r := &Ring{fd: fd, multishot: p.Features&featRsrcTags != 0 && !o.NoMultishot}
	if err := r.mapRings(&p); err != nil {
		unix.Close(fd)
		return nil, err
	}
	r.claimed.Store(atomic.LoadUint32(r.sqTail))
	r.published.Store(atomic.LoadUint32(r.sqTail))
	return r, nil
}

func (r *Ring) mapRings(p *iosys.IOURingParams) error {
	sqSize := int(p.SQOffset.Array) + int(p.SQEntries)*4
	cqSize := int(p.CQOffset.Cqes) + int(p.CQEntries)*cqeSize
	single := p.Features&iosys.IORING_FEAT_SINGLE_MMAP != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	flags := unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	r.mem, err = unix.Mmap(r.fd, int64(iosys.IORING_OFF_SQ_RING), sqSize, prot, flags)
	if err != nil {
		return fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	cq := r.mem
	if !single {
		r.cmem, err = unix.Mmap(r.fd, int64(iosys.IORING_OFF_CQ_RING), cqSize, prot, flags)
		if err != nil {
			r.unmap()
			return fmt.Errorf("mmap io_uring CQ ring: %w", err)
		}
		cq = r.cmem
	}
	r.smem, err = unix.Mmap(r.fd, int64(iosys.IORING_OFF_SQES), int(p.SQEntries)*sqeSize, prot, flags)
	if err != nil {
		r.unmap()
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead = u32(r.mem, p.SQOffset.Head)
	r.sqTail = u32(r.mem, p.SQOffset.Tail)
	r.sqMask = u32(r.mem, p.SQOffset.RingMask)
	r.sqEntries = u32(r.mem, p.SQOffset.RingEntries)
	r.sqFlags = u32(r.mem, p.SQOffset.Flags)
	r.sqArray = unsafe.Pointer(&r.mem[p.SQOffset.Array])
	r.sqes = unsafe.Pointer(&r.smem[0])
	r.cqHead = u32(cq, p.CQOffset.Head)
	r.cqTail = u32(cq, p.CQOffset.Tail)
	r.cqMask = u32(cq, p.CQOffset.RingMask)
	r.cqes = unsafe.Pointer(&cq[p.CQOffset.Cqes])
	return nil
}

func (r *Ring) unmap() {
	for _, m := range [][]byte{r.smem, r.cmem, r.mem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.smem, r.cmem, r.mem = nil, nil, nil
}

// Multishot reports whether PollAdd(…, multishot=true) arms a multishot poll.
func (r *Ring) Multishot() bool { return r.multishot }

// FD returns the ring's file descriptor.
func (r *Ring) FD() int { return r.fd }

// Close tears the ring down. Requests still in flight are cancelled by the
// kernel. No goroutine may use the ring during or after Close.
func (r *Ring) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if r.pollFile != nil {
		r.pollFile.Close()
	}
	r.unmap()
	return unix.Close(r.fd)
}

// sqe returns the submission entry in slot i.
func (r *Ring) sqe(i uint32) *iosys.SubmissionQueueEntry64 {
	return (*iosys.SubmissionQueueEntry64)(unsafe.Add(r.sqes, uintptr(i)*sqeSize))
}

// claim reserves one SQ slot and returns its ring index.
func (r *Ring) claim() (uint32, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	entries := atomic.LoadUint32(r.sqEntries)
	for spins := 0; ; spins++ {
		if r.closed.Load() {
			return 0, ErrClosed
		}
		t := r.claimed.Load()
		if t-atomic.LoadUint32(r.sqHead) >= entries {
			// The kernel has not consumed enough: push what is published.
			if _, err := r.enter(0, 0); err != nil {
				return 0, err
			}
			if t-atomic.LoadUint32(r.sqHead) >= entries {
				if spins > maxSpinsPerClaim {
					return 0, ErrFull
				}
				runtime.Gosched()
				continue
			}
		}
		if r.claimed.CompareAndSwap(t, t+1) {
			return t, nil
		}
	}
}

// publish makes slot t visible to the kernel once every earlier slot is.
func (r *Ring) publish(t uint32) {
	for r.published.Load() != t {
		runtime.Gosched()
	}
	mask := atomic.LoadUint32(r.sqMask)
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(t&mask)*4)) = t & mask
	atomic.StoreUint32(r.sqTail, t+1)
	r.published.Store(t + 1)
}

// prep claims a slot, lets fill write the entry, and publishes it.
func (r *Ring) prep(fill func(*iosys.SubmissionQueueEntry64)) error {
	t, err := r.claim()
	if err != nil {
		return err
	}
	e := r.sqe(t & atomic.LoadUint32(r.sqMask))
	e.Reset()
	fill(e)
	r.publish(t)
	return nil
}

// PollAdd queues a poll for events on fd. With multishot (and kernel
// support, see Multishot) the poll stays armed and posts a completion for
// every wake-up with More() set; otherwise it completes once.
func (r *Ring) PollAdd(fd int, events uint32, multishot bool, userData uint64) error {
	length := uint32(0)
	if multishot && r.multishot {
		length = pollAddMulti
	}
	return r.prep(func(e *iosys.SubmissionQueueEntry64) {
		e.PrepOperation(iosys.IORING_OP_POLL_ADD, int32(fd), 0, length, 0)
		e.SetOpFlags(events)
		e.SetUserData(userData)
	})
}

// PollRemove queues the removal of the poll whose user data is target; its
// own completion carries userData.
func (r *Ring) PollRemove(target, userData uint64) error {
	return r.prep(func(e *iosys.SubmissionQueueEntry64) {
		e.PrepOperation(iosys.IORING_OP_POLL_REMOVE, -1, target, 0, 0)
		e.SetUserData(userData)
	})
}

// Nop queues a no-op whose completion carries userData (used to wake a
// reaper).
func (r *Ring) Nop(userData uint64) error {
	return r.prep(func(e *iosys.SubmissionQueueEntry64) {
		e.PrepOperation(iosys.IORING_OP_NOP, -1, 0, 0, 0)
		e.SetUserData(userData)
	})
}

// Submit hands every published entry to the kernel.
func (r *Ring) Submit() error {
	_, err := r.enter(0, 0)
	return err
}

func (r *Ring) enter(minComplete, flags uint32) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	toSubmit := r.published.Load() - atomic.LoadUint32(r.sqHead)
	if toSubmit == 0 && flags&enterGetEvents == 0 {
		return 0, nil
	}
	for {
		n, err := iosys.IOURingEnter(r.fd, toSubmit, minComplete, flags, nil)
		if err != nil && errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil && errors.Is(err, unix.EBUSY) && flags&enterGetEvents == 0 {
			// Completions are backed up; the reaper will make room.
			return n, nil
		}
		return n, err
	}
}

// Reap copies the completions available now into buf and returns how many.
// It makes no syscall. Only one goroutine may reap.
func (r *Ring) Reap(buf []CQE) int {
	if r.closed.Load() {
		return 0
	}
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	mask := atomic.LoadUint32(r.cqMask)
	n := 0
	for head != tail && n < len(buf) {
		c := (*iosys.CompletionQueueEvent16)(unsafe.Add(r.cqes, uintptr(head&mask)*cqeSize))
		buf[n] = CQE{UserData: c.UserData(), Res: c.Result(), Flags: c.Flags()}
		n++
		head++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// Wait submits what is published, blocks until at least one completion is
// available, and reaps up to len(buf) of them.
func (r *Ring) Wait(buf []CQE) (int, error) {
	if n := r.Reap(buf); n > 0 {
		// Still push pending submissions so they are not delayed.
		if err := r.Submit(); err != nil {
			return n, err
		}
		return n, nil
	}
	if _, err := r.enter(1, enterGetEvents); err != nil {
		return 0, err
	}
	return r.Reap(buf), nil
}

// WaitParked is Wait for a caller that must not hold an OS thread in a
// system call while the ring is idle. An io_uring fd is readable while
// completions are ready, so the goroutine parks in the Go runtime's network
// poller instead of blocking in io_uring_enter: a thread blocked in a
// syscall keeps its P until the runtime's monitor takes it back, which costs
// a hand-off (waking another thread) every time the ring goes idle, on
// every fork-heavy workload. Only one goroutine may wait; it submits what is
// published before waiting.
func (r *Ring) WaitParked(buf []CQE) (int, error) {
	r.pollOnce.Do(r.openPollFile)
	if r.pollErr != nil {
		return r.Wait(buf)
	}
	if err := r.Submit(); err != nil {
		return 0, err
	}
	rc, err := r.pollFile.SyscallConn()
	if err != nil {
		return r.Wait(buf)
	}
	n := 0
	err = rc.Read(func(uintptr) bool {
		n = r.Reap(buf)
		return n > 0 || r.closed.Load()
	})
	if r.closed.Load() && n == 0 {
		return 0, ErrClosed
	}
	if err != nil {
		return n, fmt.Errorf("io_uring poll: %w", err)
	}
	return n, nil
}

// openPollFile registers a duplicate of the ring's fd with the Go poller.
// The duplicate shares the ring's open file, so O_NONBLOCK is set on both;
// io_uring_enter does not look at it.
func (r *Ring) openPollFile() {
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		r.pollErr = fmt.Errorf("dup ring fd: %w", err)
		return
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		r.pollErr = fmt.Errorf("set ring fd non-blocking: %w", err)
		return
	}
	r.pollFile = os.NewFile(uintptr(fd), "io_uring")
}
