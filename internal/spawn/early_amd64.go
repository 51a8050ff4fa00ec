package spawn

import "syscall"

// earlySupported: this architecture has an early child (StartEarly).
const earlySupported = true

// rawCloneEarly forks an early child that runs fn(e) (early_amd64.s); fn
// is the ABIInternal entry of a func(*earlyChild) (earlyMainPC).
func rawCloneEarly(args *cloneArgs, size uintptr, fn uintptr, e *earlyChild) (pid uintptr, err syscall.Errno)

// loadUint32 and casUint32 are the early child's atomics: sync/atomic's
// go through the race detector's runtime in -race builds, which the child
// must not enter.
func loadUint32(p *uint32) uint32

func casUint32(p *uint32, old, new uint32) bool
