package supervisor

import (
	"os"
	"sync/atomic"

	"github.com/sandlock/sandlock/internal/sys"
)

// wakePolicy switches SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP with the shape of
// the workload. The synchronous wake-up runs the supervisor on the
// notifying task's CPU and the task, once answered, on the supervisor's:
// for one task notifying at a time that saves a cross-CPU wake-up each way
// (a notified mmap in a loop: 12 us a round trip against 20 us here; a C
// build with make -j1 under -m: 1.07x bare against 1.18x). When two tasks
// notify at the same time from both CPUs, the same rule keeps pulling them
// onto the supervisor's CPU while the other idles: make -j2 under -m took
// 1.79x bare with it, 1.20x without (a minimal C supervisor shows the same,
// 1.48x against 1.08x). So the supervisor turns it off while two tasks'
// notifications alternate (A, B, A, B, A, each within interleaveNs of the
// same task's previous one: they run at once) and back on after soloNs
// without that. A parent and the
// children it starts one after the other (A, B, A, C, A, D: a shell loop)
// do not count: each child is a new task.
//
// Nor do tasks that block again within minGapNs of their previous
// notification: what a pulled task costs is the run it then makes on the
// supervisor's CPU while its own idles, and a task that notifies again
// within microseconds (a dynamic loader's mappings: 90% of the turns of
// two shell loops under -m came under 37 us) pays little for it, while
// each cross-CPU wake-up costs it tens of microseconds. The compilers of a
// make -j2 alternate after a median 430 us of work (25% under 150 us).
// Two shell loops of 300 under -m 512M: 130 ms instead of 135 (speed-up
// over one loop 0.89x bare's instead of 0.86x; 30 interleaved runs); a
// C build under -m with make -j2 still turns it off within 5 ms, and runs
// as fast as with the rule before (within its noise; 4.54 s with the flag
// always on against 3.84, bare 3.36).
//
// SANDLOCK_SYNC_WAKE=always keeps the flag on.
type wakePolicy struct {
	off     atomic.Bool  // the flag is cleared on the listener
	cur     atomic.Int32 // the task of the latest notification
	curAt   atomic.Int64
	prev    atomic.Int32 // the task notifying before cur
	prevAt  atomic.Int64
	pair    atomic.Uint64 // the two tasks alternating, and ...
	turns   atomic.Int32  // ... how many times in a row
	mixedAt atomic.Int64  // when two tasks last alternated
}

const (
	interleaveNs = 5_000_000  // A, B, A closer than this: A and B run at once
	minGapNs     = 100_000    // A, B, A closer than this: A hardly ran, no turn
	minTurns     = 3          // A, B, A, B, A: a pair alternating
	soloNs       = 20_000_000 // this long without one turns the flag back on
)

var wakeAdaptive = os.Getenv("SANDLOCK_SYNC_WAKE") != "always"

// observe records a notification from tid and switches the flag when the
// workload changes shape. It takes no lock and makes no syscall but the
// rare switch; workers racing on it can only delay a switch.
func (p *wakePolicy) observe(listener int, tid int32) {
	if !wakeAdaptive {
		return
	}
	if mixed := p.note(tid, nanotime()); mixed != p.off.Load() {
		flags := uint64(sys.UserNotifFdSyncWakeUp)
		if mixed {
			flags = 0
		}
		if sys.NotifSetFlags(listener, flags) == nil {
			p.off.Store(mixed)
		}
	}
}

// note records a notification from tid at now and reports whether two
// tasks are notifying at once.
func (p *wakePolicy) note(tid int32, now int64) bool {
	cur := p.cur.Load()
	if tid == cur {
		p.curAt.Store(now)
	} else {
		if gap := now - p.prevAt.Load(); tid == p.prev.Load() && gap < interleaveNs && gap >= minGapNs {
			key := pairKey(tid, cur)
			if p.pair.Load() == key {
				if p.turns.Add(1) >= minTurns {
					p.mixedAt.Store(now)
				}
			} else {
				p.pair.Store(key)
				p.turns.Store(1)
			}
		}
		p.prev.Store(cur)
		p.prevAt.Store(p.curAt.Load())
		p.cur.Store(tid)
		p.curAt.Store(now)
	}
	at := p.mixedAt.Load()
	return at != 0 && now-at < soloNs
}

func pairKey(a, b int32) uint64 {
	if a > b {
		a, b = b, a
	}
	return uint64(uint32(a))<<32 | uint64(uint32(b))
}
