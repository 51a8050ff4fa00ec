package sandbox

import (
	"encoding/binary"
	"unsafe"
)

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// cldExited is CLD_EXITED, the si_code of a child that exited normally.
const cldExited = 1
