//go:build !amd64

package spawn

import (
	"sync/atomic"
	"syscall"
)

// earlySupported: no early child on this architecture yet (its clone on a
// stack of its own is written for amd64); sandboxes fork as usual, and
// StartEarly returns before anything below could run.
const earlySupported = false

func rawCloneEarly(*cloneArgs, uintptr, uintptr, *earlyChild) (uintptr, syscall.Errno) {
	return 0, syscall.ENOSYS
}

func loadUint32(p *uint32) uint32 { return atomic.LoadUint32(p) }

func casUint32(p *uint32, old, new uint32) bool { return atomic.CompareAndSwapUint32(p, old, new) }
