package supervisor

import (
	"sync"
	"sync/atomic"
)

// ref names a proc in the arena: index+1 in the low 32 bits, the proc's
// generation in the high 32. A proc recycled for another process gets a new
// generation, so a stale ref no longer resolves. 0 is no proc.
type ref uint64

func mkref(idx, gen uint32) ref { return ref(uint64(idx+1) | uint64(gen)<<32) }
func (r ref) idx() uint32       { return uint32(r) - 1 }
func (r ref) gen() uint32       { return uint32(r >> 32) }

const (
	pidChunkBits = 10
	pidChunk     = 1 << pidChunkBits
	pidLimit     = 1 << 22 // PID_MAX_LIMIT on 64-bit kernels
	arenaChunk   = 32
	arenaChunks  = 1 << 14
)

// pidTable maps a pid or tid to the ref of its process: a two-level array
// indexed by pid, so a lookup is two loads and an insert one
// compare-and-swap. Second-level chunks are allocated on first use.
type pidTable struct {
	top [pidLimit >> pidChunkBits]atomic.Pointer[[pidChunk]atomic.Uint64]
}

func (t *pidTable) load(pid int32) ref {
	if pid <= 0 || pid >= pidLimit {
		return 0
	}
	c := t.top[pid>>pidChunkBits].Load()
	if c == nil {
		return 0
	}
	return ref(c[pid&(pidChunk-1)].Load())
}

func (t *pidTable) slot(pid int32) *atomic.Uint64 {
	if pid <= 0 || pid >= pidLimit {
		return nil
	}
	p := &t.top[pid>>pidChunkBits]
	c := p.Load()
	if c == nil {
		c = new([pidChunk]atomic.Uint64)
		if !p.CompareAndSwap(nil, c) {
			c = p.Load()
		}
	}
	return &c[pid&(pidChunk-1)]
}

// insert maps pid to r unless it maps to a live ref already; it returns the
// ref now in place.
func (t *pidTable) insert(pid int32, r ref, live func(ref) bool) ref {
	s := t.slot(pid)
	if s == nil {
		return 0
	}
	for {
		old := ref(s.Load())
		if old != 0 && live(old) {
			return old
		}
		if s.CompareAndSwap(uint64(old), uint64(r)) {
			return r
		}
	}
}

// remove unmaps pid if it still maps to r.
func (t *pidTable) remove(pid int32, r ref) {
	if s := t.slot(pid); s != nil {
		s.CompareAndSwap(uint64(r), 0)
	}
}

// arena holds every proc record. Records are recycled through a lock-free
// stack (index plus an ABA tag in one word); the arena grows under a mutex
// only when the stack is empty.
type arena struct {
	chunks atomic.Pointer[[]*[arenaChunk]proc] // replaced (copied) when it grows
	n      atomic.Uint32                       // records created
	free   atomic.Uint64                       // top: index+1 in the low 32 bits, tag in the high 32
	grow   sync.Mutex
}

func (a *arena) get(i uint32) *proc {
	cs := a.chunks.Load()
	if cs == nil || int(i/arenaChunk) >= len(*cs) {
		return nil
	}
	return &(*cs)[i/arenaChunk][i%arenaChunk]
}

// resolve returns the proc r names if it is still that proc.
func (a *arena) resolve(r ref) *proc {
	if r == 0 || r.idx() >= a.n.Load() {
		return nil
	}
	p := a.get(r.idx())
	if p == nil || p.gen.Load() != r.gen() {
		return nil
	}
	return p
}

// reserve makes sure at least n records exist (called before the sandbox
// starts, so the hot path never grows the arena).
func (a *arena) reserve(n int) {
	for int(a.n.Load()) < n {
		if !a.growOne() {
			return
		}
	}
}

func (a *arena) growOne() bool {
	a.grow.Lock()
	defer a.grow.Unlock()
	n := a.n.Load()
	ci := n / arenaChunk
	if ci >= arenaChunks {
		return false
	}
	c := new([arenaChunk]proc)
	for i := range c {
		c[i].idx = n + uint32(i)
		c[i].init()
	}
	var cs []*[arenaChunk]proc
	if old := a.chunks.Load(); old != nil {
		cs = append(cs, *old...)
	}
	cs = append(cs, c)
	a.chunks.Store(&cs)
	a.n.Store(n + arenaChunk)
	for i := len(c) - 1; i >= 0; i-- {
		a.push(c[i].idx)
	}
	return true
}

func (a *arena) push(i uint32) {
	p := a.get(i)
	for {
		top := a.free.Load()
		p.nextFree.Store(uint32(top))
		next := uint64(i+1) | (top>>32+1)<<32
		if a.free.CompareAndSwap(top, next) {
			return
		}
	}
}

// alloc pops a record, growing the arena if none is free. It returns nil
// only when the arena is at its maximum size.
func (a *arena) alloc() *proc {
	for {
		top := a.free.Load()
		i := uint32(top)
		if i == 0 {
			if !a.growOne() {
				return nil
			}
			continue
		}
		p := a.get(i - 1)
		next := uint64(p.nextFree.Load()) | (top>>32+1)<<32
		if a.free.CompareAndSwap(top, next) {
			return p
		}
	}
}

// recycle retires p's identity (stale refs stop resolving) and returns it to
// the free stack.
func (a *arena) recycle(p *proc) {
	p.gen.Add(1)
	p.reset()
	a.push(p.idx)
}
