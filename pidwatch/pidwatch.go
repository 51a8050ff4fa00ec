// Package pidwatch watches the pidfds of sandboxed processes through an
// io_uring and delivers their exits in batches.
//
// One goroutine (Start) reaps the ring: every completion of a pidfd poll is an
// exit, and all exits reaped in one pass are handed to the callback at once,
// so the supervisor releases their accounting in one sweep. Completions of
// other kinds (a seccomp listener polled on the same ring) go to a second
// callback. Watch may be called from any goroutine.
package pidwatch

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sandlock/sandlock/ring"
	"golang.org/x/sys/unix"
)

// Token kinds live in the top byte of a completion's user data.
const (
	kindShift = 56
	kindExit  = 0
	kindWake  = 0xfe
	kindStop  = 0xff
	// KindOther is the first kind a caller may use for its own requests on
	// the shared ring (see Loop.Ring).
	KindOther = 1
	tokenMask = 1<<kindShift - 1
)

// Kind returns the kind of a completion's user data.
func Kind(userData uint64) uint8 { return uint8(userData >> kindShift) }

// Tag builds user data of kind k carrying v (which must fit in 56 bits).
func Tag(k uint8, v uint64) uint64 { return uint64(k)<<kindShift | v&tokenMask }

// Loop owns the reaping side of a ring.
type Loop struct {
	r       *ring.Ring
	onExits func(tokens []uint64)
	onOther func(ring.CQE)
	done    chan struct{}
	start   sync.Once
	stop    sync.Once
	err     error
	batch   int
	gather  int           // completions worth waking for (SetGather)
	window  time.Duration // how long a partial batch may wait
	// beforeReap runs on the loop's goroutine after a wake-up (and the
	// gathering window), before the completions are reaped; pending says
	// whether it has work left, asked after each reaping pass
	// (SetBeforeReap).
	beforeReap func()
	pending    func() bool
}

// SetGather makes the loop, woken by a completion while fewer than n are
// ready, wait window more before it delivers: exits then arrive in batches
// and a fork-heavy sandbox costs the reaper two wake-ups (the poller's and
// a timer's) per batch instead of one per exit. Call it before Start; a
// loop that also delivers latency-sensitive completions (onOther) should
// not gather.
func (l *Loop) SetGather(n int, window time.Duration) {
	l.gather, l.window = n, window
}

// SetBeforeReap makes the loop call f on its goroutine every time it wakes,
// after the gathering window and before it reaps: f may Arm watches, whose
// polls are then submitted from the loop's thread. After each reaping pass
// the loop asks pending; while it reports work left (work whose Wake may
// have been reaped in that pass), the loop does not park but runs f again
// one window later. Call it before Start.
func (l *Loop) SetBeforeReap(f func(), pending func() bool) {
	l.beforeReap, l.pending = f, pending
}

// Arm queues a one-shot poll on pidfd like Watch, without submitting it; the
// next Flush (or any submission) hands it to the kernel. A poll submitted on
// a process that has exited already completes at once, in the submitting
// call, without waking anybody later.
func (l *Loop) Arm(pidfd int, token uint64) error {
	if token > tokenMask {
		return fmt.Errorf("pidwatch: token %#x too large", token)
	}
	if err := l.r.PollAdd(pidfd, unix.POLLIN, false, Tag(kindExit, token)); err != nil {
		return fmt.Errorf("pidwatch: arm pidfd %d: %w", pidfd, err)
	}
	return nil
}

// Flush submits what Arm queued.
func (l *Loop) Flush() error {
	if err := l.r.Submit(); err != nil {
		return fmt.Errorf("pidwatch: submit: %w", err)
	}
	return nil
}

// Wake makes the loop wake up (and run its SetBeforeReap hook) soon, from
// any goroutine: a no-op request completes at once in this call.
func (l *Loop) Wake() error {
	if err := l.r.Nop(Tag(kindWake, 0)); err != nil {
		return fmt.Errorf("pidwatch: wake: %w", err)
	}
	return l.Flush()
}

// New returns a loop over r. onExits receives the tokens of every pidfd that
// became readable (the process exited) in one reaping pass; onOther receives
// completions of other kinds. Both run on the loop's goroutine and must not
// block for long.
func New(r *ring.Ring, batch int, onExits func(tokens []uint64), onOther func(ring.CQE)) *Loop {
	if batch <= 0 {
		batch = 64
	}
	return &Loop{r: r, onExits: onExits, onOther: onOther, done: make(chan struct{}), batch: batch, gather: 1}
}

// Ring returns the ring the loop reaps, for callers that arm their own
// requests on it (with Tag(KindOther+…)).
func (l *Loop) Ring() *ring.Ring { return l.r }

// Watch arms a one-shot poll on pidfd; its exit will be reported with token
// (which must fit in 56 bits).
func (l *Loop) Watch(pidfd int, token uint64) error {
	if err := l.Arm(pidfd, token); err != nil {
		return err
	}
	return l.Flush()
}

// Start runs the reaping goroutine.
func (l *Loop) Start() {
	l.start.Do(func() {
		go func() {
			l.err = l.run()
			close(l.done)
		}()
	})
}

// run reaps until Stop. It returns the error that ended it, nil after Stop.
func (l *Loop) run() error {
	cqes := make([]ring.CQE, l.batch)
	exits := make([]uint64, 0, l.batch)
	again := false // the hook has work left: do not park
	for {
		// A gathering loop (exits only) parks in the Go poller while the
		// ring is idle (WaitParked); a partial batch is given its window by
		// a timer, not by a thread blocked in io_uring_enter. A loop that
		// also delivers other completions (the seccomp listener polled on
		// the ring) waits in io_uring_enter, which runs the completions'
		// task work itself: parked, the listener's completions could wait
		// for good (a sandbox hung in its first notified mmap).
		var n int
		var err error
		if l.gather > 1 {
			if again {
				n, err = l.r.Reap(cqes), nil
			} else {
				n, err = l.r.WaitParked(cqes)
			}
			if err == nil && !hasStop(cqes[:n]) {
				if n < l.gather && l.window > 0 {
					time.Sleep(l.window)
				}
				if l.beforeReap != nil {
					l.beforeReap()
				}
				n += l.r.Reap(cqes[n:])
			}
		} else {
			n, err = l.r.Wait(cqes)
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("pidwatch: wait: %w", err)
		}
		stopping := false
		exits = exits[:0]
		for _, c := range cqes[:n] {
			switch Kind(c.UserData) {
			case kindExit:
				exits = append(exits, c.UserData&tokenMask)
			case kindWake:
			case kindStop:
				stopping = true
			default:
				if l.onOther != nil {
					l.onOther(c)
				}
			}
		}
		if len(exits) > 0 {
			l.onExits(exits)
		}
		if stopping {
			return nil
		}
		again = l.pending != nil && l.pending()
	}
}

func hasStop(cqes []ring.CQE) bool {
	for _, c := range cqes {
		if Kind(c.UserData) == kindStop {
			return true
		}
	}
	return false
}

// Stop ends the reaping goroutine (after it delivers what it already
// reaped), waits for it and returns the error that ended it early, if any.
// It is safe to call more than once, and before Start; the ring stays open.
func (l *Loop) Stop() error {
	l.start.Do(func() { close(l.done) })
	l.stop.Do(func() {
		if err := l.r.Nop(Tag(kindStop, 0)); err == nil {
			l.r.Submit()
		}
	})
	<-l.done
	return l.err
}
