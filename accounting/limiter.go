// Package accounting counts what a sandbox holds — processes, bytes of
// writable memory — against an exact limit, without a global lock on the
// hot path.
//
// A Limiter splits its free units between a shared pool and per-shard
// slack. Each supervisor worker owns one shard (workers run one per CPU, so
// the shards are per CPU in practice): acquiring from its own slack is one
// compare-and-swap on a cache line no other worker writes. Only when a shard
// runs dry does it take the slow path, which serialises on a mutex and
// refills it from the pool; only when the pool is short does it gather every
// shard's slack back into the pool and decide exactly. The invariant
//
//	pool + Σ slack + in use == limit
//
// holds at every step, and slack is never handed out while the pool is in
// debt, so TryAcquire never lets the units in use exceed the limit.
package accounting

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

const cacheLine = 128 // covers adjacent-line prefetch on x86

// shard is one worker's slack, alone on its cache lines.
type shard struct {
	avail atomic.Int64
	_     [cacheLine - 8]byte
}

// Limiter hands out units up to a limit. The zero value is not usable; see
// New. A nil *Limiter is unlimited: every method succeeds and counts nothing.
type Limiter struct {
	limit  int64
	chunk  int64 // slack a shard keeps after a refill
	pool   atomic.Int64
	_      [cacheLine - 8]byte
	shards []shard
	slow   sync.Mutex // serialises the slow path only
	peak   atomic.Int64
	slows  atomic.Int64 // slow paths taken (tests)
	// peakShift: a shard folds InUse into peak whenever its slack crosses
	// a multiple of 1<<peakShift units downwards (notePeakAt).
	peakShift uint
}

// New returns a limiter of limit units split over n shards. A shard keeps
// at most chunk units of slack; chunk <= 0 picks limit/(4n).
func New(limit int64, n int, chunk int64) *Limiter {
	if n < 1 {
		n = 1
	}
	if chunk <= 0 {
		chunk = limit / int64(4*n)
	}
	if chunk < 1 {
		chunk = 1
	}
	l := &Limiter{limit: limit, chunk: chunk, shards: make([]shard, n), peakShift: uint(bits.Len64(uint64(max(chunk/16, 1)))) - 1}
	l.pool.Store(limit)
	return l
}

// Limit returns the limit, math.MaxInt64 for a nil (unlimited) limiter.
func (l *Limiter) Limit() int64 {
	if l == nil {
		return math.MaxInt64
	}
	return l.limit
}

// Shards returns the number of shards.
func (l *Limiter) Shards() int {
	if l == nil {
		return 1
	}
	return len(l.shards)
}

// TryAcquire takes n units for shard s (0 <= s < Shards()). It reports false,
// taking nothing, when fewer than n units are free.
func (l *Limiter) TryAcquire(s int, n int64) bool {
	if l == nil || n <= 0 {
		return true
	}
	sh := &l.shards[s]
	if l.pool.Load() >= 0 {
		for {
			v := sh.avail.Load()
			if v < n {
				break
			}
			if sh.avail.CompareAndSwap(v, v-n) {
				l.notePeakAt(v, v-n)
				return true
			}
		}
	}
	return l.acquireSlow(sh, n)
}

// notePeakAt folds InUse into the peak when a shard's slack went from
// before to after across a multiple of 1<<peakShift (about chunk/16): the
// peak is then right to within that many units a shard, where the slow
// path's refills alone (chunk units apart) reported 8 KiB for a process
// that had grown its heap by 40 MiB. A shift, not a counter: the fast path
// keeps its one atomic operation.
func (l *Limiter) notePeakAt(before, after int64) {
	if before>>l.peakShift != after>>l.peakShift {
		l.NotePeak()
	}
}

func (l *Limiter) acquireSlow(sh *shard, n int64) bool {
	l.slow.Lock()
	defer l.slow.Unlock()
	l.slows.Add(1)
	// The pool first: gathering every shard's slack each time emptied the
	// other shards, whose next acquisitions then took the slow path and
	// emptied this one — two shards acquiring in turn went through the
	// mutex every time. Only a pool too small for n needs the exact count.
	free := l.pool.Load()
	if free < n {
		l.gather()
		if free = l.pool.Load(); free < n {
			return false
		}
	}
	// Keep some slack on this shard so its next acquisitions are fast.
	refill := min(l.chunk, free-n)
	l.pool.Add(-(n + refill))
	sh.avail.Add(refill)
	l.NotePeak()
	return true
}

// gather moves every shard's slack into the pool. Callers hold l.slow.
func (l *Limiter) gather() {
	for i := range l.shards {
		if v := l.shards[i].avail.Swap(0); v != 0 {
			l.pool.Add(v)
		}
	}
}

// Force takes n units for shard s even beyond the limit. It is for units
// already in use that the supervisor learns about late (a process it did not
// see being created): refusing them would not make them go away.
func (l *Limiter) Force(s int, n int64) {
	if l == nil || n <= 0 {
		return
	}
	sh := &l.shards[s]
	defer l.NotePeak() // rare: units learnt late
	for {
		v := sh.avail.Load()
		take := min(v, n)
		if take <= 0 {
			break
		}
		if sh.avail.CompareAndSwap(v, v-take) {
			n -= take
			break
		}
	}
	if n > 0 {
		l.pool.Add(-n)
	}
}

// Release gives n units back through shard s.
func (l *Limiter) Release(s int, n int64) {
	if l == nil || n <= 0 {
		return
	}
	sh := &l.shards[s]
	if v := sh.avail.Add(n); v > 2*l.chunk || l.pool.Load() < 0 {
		// Too much slack on one shard, or the pool is in debt: return the
		// excess to the pool so other shards (and the debt) see it.
		if excess := sh.avail.Swap(0); excess > 0 {
			l.pool.Add(excess)
		}
	}
}

// InUse returns the units in use now. It reads every shard, so it is for
// reports, not for decisions.
func (l *Limiter) InUse() int64 {
	if l == nil {
		return 0
	}
	free := l.pool.Load()
	for i := range l.shards {
		free += l.shards[i].avail.Load()
	}
	return l.limit - free
}

// Peak returns the highest InUse observed: by the slow path, by NotePeak,
// by Force, and by TryAcquire about every chunk/16 units (notePeakAt).
func (l *Limiter) Peak() int64 {
	if l == nil {
		return 0
	}
	return max(l.peak.Load(), l.InUse())
}

// NotePeak folds the current InUse into Peak.
func (l *Limiter) NotePeak() {
	if l == nil {
		return
	}
	used := l.InUse()
	for {
		p := l.peak.Load()
		if used <= p || l.peak.CompareAndSwap(p, used) {
			return
		}
	}
}
