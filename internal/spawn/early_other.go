//go:build !amd64

package spawn

import "syscall"

// earlySupported: no early child on this architecture yet (its clone on a
// stack of its own is written for amd64); sandboxes fork as usual.
const earlySupported = false

func rawCloneEarly(*cloneArgs, uintptr, uintptr, *earlyChild) (uintptr, syscall.Errno) {
	return 0, syscall.ENOSYS
}

func loadUint32(p *uint32) uint32 { return *p }

func casUint32(p *uint32, old, new uint32) bool {
	if *p == old {
		*p = new
		return true
	}
	return false
}
