package supervisor

import (
	"sync/atomic"
)

// State bits of a proc.
const (
	stLive     = 1 << iota // registered and not yet gone
	stCounted              // holds a process slot
	stExited               // its pidfd reported the exit
	stGone                 // reaped; the record is being recycled
	stRoot                 // the sandbox's first process (waited by the sandbox)
	stSelf                 // sandlock itself (the parent of the first process)
	stOurChild             // sandlock is its parent: sandlock reaps it
	stReady                // registration finished: its exit may be settled
	stArmed                // its exit watch is submitted (armPending)
)

const (
	maxMarkers = 4
	maxPending = 4
)

// marker is a fork in flight: the thread that forked, and the memory
// reserved for the child's copy of the address space. The process slot of
// the child is held by the marker until the child is found (and registered)
// or known not to exist.
type marker struct {
	tid atomic.Int32 // 0: free
	mem atomic.Int64
}

// pending is a memory reservation whose syscall may not have run yet: the
// thread was answered CONTINUE and has not made another notified syscall.
// A resync must not give it back on the strength of /proc alone.
type pending struct {
	tid   atomic.Int32
	bytes atomic.Int64
}

// proc is the supervisor's record of one sandboxed process.
type proc struct {
	idx      uint32
	gen      atomic.Uint32
	nextFree atomic.Uint32

	pid    atomic.Int32 // thread-group id
	parent atomic.Int32 // tgid of the parent when registered
	pidfd  atomic.Int32
	state  atomic.Uint32

	markers  [maxMarkers]marker
	nmarkers atomic.Int32
	overflow atomic.Int32 // forks beyond maxMarkers: slots held until exit

	pend  [maxPending]pending
	npend atomic.Int32
	// pendOverflow holds reservations made when every pending slot was
	// taken; they are kept until the process exits.
	pendOverflow atomic.Int64

	mem      atomic.Int64  // bytes charged to the memory limiter, pending included
	shared   atomic.Int64  // of which shared anonymous memory (not in statm)
	startBrk atomic.Uint64 // program break base when brk was last measured
	brk      atomic.Uint64 // highest break charged

	statmFD    atomic.Int32 // cached /proc/<pid>/statm, -1 when not open
	statFD     atomic.Int32 // cached /proc/<pid>/stat (brk), -1
	childrenFD atomic.Int32 // cached /proc/<pid>/task/<pid>/children, -1
}

func (p *proc) init() {
	p.pidfd.Store(-1)
	p.statmFD.Store(-1)
	p.statFD.Store(-1)
	p.childrenFD.Store(-1)
}

// reset clears everything but the identity fields the arena manages.
func (p *proc) reset() {
	p.pid.Store(0)
	p.parent.Store(0)
	p.state.Store(0)
	for i := range p.markers {
		p.markers[i].tid.Store(0)
		p.markers[i].mem.Store(0)
	}
	p.nmarkers.Store(0)
	p.overflow.Store(0)
	for i := range p.pend {
		p.pend[i].tid.Store(0)
		p.pend[i].bytes.Store(0)
	}
	p.npend.Store(0)
	p.pendOverflow.Store(0)
	// mem and shared stay: finalize took them by swap, and a charge that
	// arrives later is settled by its handler (settleLate); zeroing them
	// here could lose it from the limiter.
	p.startBrk.Store(0)
	p.brk.Store(0)
	p.closeProcFiles() // a late lazy open (readCached) may have set them
	p.init()
}

// closeProcFiles closes the /proc files the record keeps open
// (readCached).
func (p *proc) closeProcFiles() {
	closeIf(&p.statmFD)
	closeIf(&p.statFD)
	closeIf(&p.childrenFD)
}

func (p *proc) ref() ref { return mkref(p.idx, p.gen.Load()) }

func (p *proc) has(bits uint32) bool { return p.state.Load()&bits == bits }

// setState sets bits and reports whether this call set all of them (so one
// caller wins a transition).
func (p *proc) setState(bits uint32) bool {
	for {
		old := p.state.Load()
		if old&bits == bits {
			return false
		}
		if p.state.CompareAndSwap(old, old|bits) {
			return true
		}
	}
}

// addMarker records a fork in flight by tid. It reports false when all
// slots are taken; the caller then counts the fork in overflow.
func (p *proc) addMarker(tid int32, mem int64) bool {
	for i := range p.markers {
		m := &p.markers[i]
		if m.tid.Load() == 0 && m.tid.CompareAndSwap(0, tid) {
			m.mem.Store(mem)
			p.nmarkers.Add(1)
			return true
		}
	}
	return false
}

// takeMarker claims the marker of tid (any marker when tid is 0) and
// returns its memory reservation; ok is false when there is none.
func (p *proc) takeMarker(tid int32) (mem int64, ok bool) {
	if p.nmarkers.Load() == 0 {
		return 0, false
	}
	for i := range p.markers {
		m := &p.markers[i]
		t := m.tid.Load()
		if t == 0 || (tid != 0 && t != tid) {
			continue
		}
		mem := m.mem.Load()
		if m.tid.CompareAndSwap(t, 0) {
			p.nmarkers.Add(-1)
			return mem, true
		}
	}
	return 0, false
}

// markerTids appends the tids with a fork in flight.
func (p *proc) markerTids(dst []int32) []int32 {
	for i := range p.markers {
		if t := p.markers[i].tid.Load(); t != 0 {
			dst = append(dst, t)
		}
	}
	return dst
}

// addPending records a memory reservation by tid.
func (p *proc) addPending(tid int32, n int64) {
	if !p.addPendingSlot(tid, n) {
		p.pendOverflow.Add(n)
	}
}

func (p *proc) addPendingSlot(tid int32, n int64) bool {
	for i := range p.pend {
		s := &p.pend[i]
		if s.tid.Load() == tid {
			s.bytes.Add(n)
			return true
		}
	}
	for i := range p.pend {
		s := &p.pend[i]
		if s.tid.Load() == 0 && s.tid.CompareAndSwap(0, tid) {
			s.bytes.Store(n)
			p.npend.Add(1)
			return true
		}
	}
	return false
}

// clearPending forgets tid's reservations: it made another notified
// syscall, so the earlier ones have run.
func (p *proc) clearPending(tid int32) {
	if p.npend.Load() == 0 {
		return
	}
	for i := range p.pend {
		s := &p.pend[i]
		if s.tid.Load() == tid {
			s.bytes.Store(0)
			if s.tid.CompareAndSwap(tid, 0) {
				p.npend.Add(-1)
			}
		}
	}
}

// pendingBytes sums the reservations not yet known to have run.
func (p *proc) pendingBytes() int64 {
	n := p.pendOverflow.Load()
	for i := range p.pend {
		if p.pend[i].tid.Load() != 0 {
			n += p.pend[i].bytes.Load()
		}
	}
	return n
}
