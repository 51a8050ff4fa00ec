package supervisor

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var pageSize = int64(unix.Getpagesize())

func pageRound(n uint64) int64 {
	if n > 1<<62 {
		return 1 << 62
	}
	return (int64(n) + pageSize - 1) &^ (pageSize - 1)
}

// memAcquire takes n bytes from the memory limiter, resyncing the ledger
// with /proc before giving up.
func (w *worker) memAcquire(n int64) bool {
	s := w.s
	if s.mem == nil || n <= 0 {
		return true
	}
	if s.mem.TryAcquire(w.shard, n) {
		return true
	}
	w.reclaimMem()
	return s.mem.TryAcquire(w.shard, n)
}

// settleLate gives back a charge that reached p after its exit had been
// accounted (the handler raced with the exit): exited and finalize take
// p.mem once, by swap; whatever arrives later is taken here, by swap too,
// so that it is released exactly once. A record reused meanwhile by
// another process keeps the charge, which that process's exit releases.
func (w *worker) settleLate(p *proc) {
	if st := p.state.Load(); st&stLive == 0 || st&(stExited|stGone) != 0 {
		if m := p.mem.Swap(0); m > 0 {
			w.s.mem.Release(w.shard, m)
		}
	}
}

// charge adds n bytes to p's ledger for a syscall of thread tid that is
// about to run; a process that would exceed the limit is killed.
func (w *worker) charge(p *proc, tid int32, n int64) {
	if w.s.mem == nil || n <= 0 {
		return
	}
	if !w.memAcquire(n) {
		w.memKill(p)
		return
	}
	// Pending first, then the charge: a concurrent resync that reads the
	// charge after this then also sees the pending bytes (see resyncProc).
	p.addPending(tid, n)
	p.mem.Add(n)
	w.settleLate(p)
}

// memKill kills p for exceeding the memory limit and fails its syscall.
func (w *worker) memKill(p *proc) {
	s := w.s
	w.fail(unix.ENOMEM)
	fd := int(p.pidfd.Load())
	if fd < 0 || p.has(stSelf) {
		return
	}
	pid := int(p.pid.Load())
	if _, dup := s.killed.LoadOrStore(pid, struct{}{}); !dup {
		// Report before killing: once the process is dead, sandlock may
		// exit before a later report would be written.
		comm := "?"
		if b, err := w.readProc(int32(pid), 0, "comm"); err == nil {
			for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
				b = b[:len(b)-1]
			}
			comm = string(b)
		}
		if s.cfg.Events.MemoryKill != nil {
			s.cfg.Events.MemoryKill(pid, comm, s.mem.Limit())
		}
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// measure returns p's writable private memory (data + stack, from
// /proc/<pid>/statm) in bytes.
func (w *worker) measure(p *proc) (int64, bool) {
	b, err := w.readCached(p, &p.statmFD, 0, "statm", 128)
	if err != nil || len(b) == 0 {
		return 0, false
	}
	// size resident shared text lib data dt
	for f := 0; f < 5; f++ {
		for len(b) > 0 && b[0] != ' ' {
			b = b[1:]
		}
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
	}
	pages, _, ok := parseInt(b)
	return pages * pageSize, ok
}

// resyncProc sets p's charge to what the kernel says it holds, plus the
// reservations whose syscalls may not have run yet and shared anonymous
// memory (which statm does not show). It returns how much the charge grew
// beyond what syscalls explained.
//
// Ordering makes it safe against concurrent charges: the charge is read,
// then the pending reservations, then /proc, and the new value is only
// stored if the charge did not move meanwhile.
func (w *worker) resyncProc(p *proc) int64 {
	s := w.s
	for try := 0; try < 4; try++ {
		old := p.mem.Load()
		pend := p.pendingBytes()
		m, ok := w.measure(p)
		if !ok {
			return 0
		}
		nv := m + pend + p.shared.Load()
		if !p.mem.CompareAndSwap(old, nv) {
			continue
		}
		if nv < old {
			s.mem.Release(w.shard, old-nv)
			return 0
		}
		s.mem.Force(w.shard, nv-old)
		return nv - old
	}
	return 0
}

// reclaimMem resyncs every process: the slow path of an allocation that did
// not fit, and the periodic check.
func (w *worker) reclaimMem() {
	s := w.s
	w.spare()
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	// Exits are gathered before the reaper sees them (pidwatch's batch):
	// what the dead held is given back first.
	w.pollExits()
	w.resyncAll()
}

// resyncAll resyncs every live process and returns the one that grew most
// without a syscall the supervisor saw.
func (w *worker) resyncAll() (grew *proc, by int64) {
	s := w.s
	n := s.arena.n.Load()
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&stLive == 0 || st&(stGone|stExited|stSelf) != 0 {
			continue
		}
		if d := w.resyncProc(p); d > by {
			grew, by = p, d
		}
	}
	s.mem.NotePeak()
	return grew, by
}

// resyncLoop catches memory that appears without a notified syscall (the
// image of an execve, with its .bss): if the ledger ends up above the limit,
// the process that grew is killed.
func (s *Supervisor) resyncLoop() {
	w := s.newWorker(s.shards - 1)
	t := time.NewTicker(s.cfg.MemoryResync)
	defer t.Stop()
	for {
		select {
		case <-s.stopResync:
			return
		case <-t.C:
		}
		s.reclaimMu.Lock()
		p, by := w.resyncAll()
		if by > 0 && s.mem.InUse() > s.mem.Limit() {
			w.pollExits() // the dead may still hold some
		}
		if by > 0 && s.mem.InUse() > s.mem.Limit() {
			w.memKill(p)
		}
		s.reclaimMu.Unlock()
	}
}

// mmap charges writable private (copy-on-write) or shared anonymous memory;
// the filter lets every other mapping through.
func (w *worker) mmap(p *proc) {
	a := &w.n.Data.Args
	n := pageRound(a[1])
	if uint32(a[3])&0x3 != unix.MAP_PRIVATE {
		// Shared anonymous: not in statm, so a resync keeps it.
		if w.s.mem != nil {
			if !w.memAcquire(n) {
				w.memKill(p)
				return
			}
			p.shared.Add(n)
			p.mem.Add(n)
			w.settleLate(p)
		}
		return
	}
	w.charge(p, int32(w.n.Pid), n)
}

// mprotect charges a range made writable (the filter only sends those).
func (w *worker) mprotect(p *proc) {
	w.charge(p, int32(w.n.Pid), pageRound(w.n.Data.Args[1]))
}

// mremap charges the growth of a mapping, or the whole new mapping when
// MREMAP_DONTUNMAP leaves the old one in place (emptied, but as writable as
// before: moving a touched mapping away and touching the old one again
// held twice its charge).
func (w *worker) mremap(p *proc) {
	a := &w.n.Data.Args
	switch {
	case a[3]&unix.MREMAP_DONTUNMAP != 0:
		w.charge(p, int32(w.n.Pid), pageRound(a[2]))
	case a[2] > a[1]:
		w.charge(p, int32(w.n.Pid), pageRound(a[2]-a[1]))
	}
}

// brk charges the growth of the program break beyond what was charged.
func (w *worker) brk(p *proc) {
	if w.s.mem == nil {
		return
	}
	want := w.n.Data.Args[0]
	// Through a descriptor kept open: a program growing its heap in small
	// steps (a compiler: dozens of brk calls) read /proc/<pid>/stat anew
	// every time, an open of a young process's files costing 15-20 us.
	text, err := w.readCached(p, &p.statFD, 0, "stat", len(w.buf))
	if err != nil {
		w.fail(unix.ENOMEM)
		return
	}
	start, ok := statField(text, 47) // start_brk
	if !ok {
		w.fail(unix.ENOMEM)
		return
	}
	if uint64(start) != p.startBrk.Load() {
		// A new program image: its break starts over.
		p.startBrk.Store(uint64(start))
		p.brk.Store(uint64(start))
	}
	top := p.brk.Load()
	if want <= top {
		// A break moved down: growth from here is charged again. The
		// charge is not given back now (the resync does, from what the
		// kernel shows), but the mark must follow the break: kept at the
		// old top, a heap shrunk before a resync (which lowered the
		// charge) and grown back after it was never charged again —
		// 40 MiB held twice under -m 64M (TestMemoryLimitBrkRegrow).
		if want >= uint64(start) {
			p.brk.Store(want)
		}
		return
	}
	p.brk.Store(want)
	w.charge(p, int32(w.n.Pid), pageRound(want-top))
}

// sysinfo answers on the process's behalf with the sandbox's memory: total
// RAM is the limit and free RAM what the ledger has left, so that runtimes
// sizing their heaps from physical memory (the JVM's initial heap is 1/64
// of it, V8's limits too, through sysconf(_SC_PHYS_PAGES)) size them for
// the sandbox rather than the host.
func (w *worker) sysinfo(p *proc) {
	s := w.s
	if s.mem == nil {
		return
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return
	}
	unit := uint64(si.Unit)
	if unit == 0 {
		unit = 1
	}
	limit := uint64(s.mem.Limit())
	free := uint64(max(s.mem.Limit()-s.mem.InUse(), 0))
	si.Totalram = min(si.Totalram, limit/unit)
	si.Freeram = min(si.Freeram, free/unit)
	si.Sharedram = min(si.Sharedram, si.Totalram)
	si.Bufferram = min(si.Bufferram, si.Totalram)
	b := (*[unsafe.Sizeof(si)]byte)(unsafe.Pointer(&si))
	if err := w.writeMem(w.n.Data.Args[0], b[:]); err != nil {
		w.fail(unix.EFAULT)
		return
	}
	w.value(0)
}

// shmget charges a System V segment to the sandbox for its lifetime: it
// can outlive the process that made it.
func (w *worker) shmget(p *proc) {
	if w.s.mem == nil {
		return
	}
	if n := pageRound(w.n.Data.Args[1]); !w.memAcquire(n) {
		w.memKill(p)
	}
}
