// Command notifloop is the benchmark harness's syscall loop: it repeats one
// operation N times and prints the time per operation, so that the cost of
// a notified syscall is measured without the process's start and exit.
//
//	notifloop mmap N    mmap of 4 KiB anonymous writable memory, then munmap
//	                    (under sandlock -m, the mmap is a notification)
//	notifloop churn N   a 256 KiB mapping made, touched and unmapped, then the
//	                    program break grown by 64 KiB and shrunk back
//
// Output: one line "ns_per_op=<float>".
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: notifloop mmap|churn N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "notifloop: bad count", os.Args[2])
		os.Exit(2)
	}
	var op func() error
	switch os.Args[1] {
	case "mmap":
		op = func() error { return mapUnmap(4096, false) }
	case "churn":
		op = churn
	default:
		fmt.Fprintln(os.Stderr, "notifloop: unknown operation", os.Args[1])
		os.Exit(2)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, "notifloop:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("ns_per_op=%.1f\n", float64(time.Since(start).Nanoseconds())/float64(n))
}

// mapUnmap maps size bytes of anonymous writable memory (one mmap syscall,
// none of unix.Mmap's bookkeeping), optionally touches every page, and
// unmaps it.
func mapUnmap(size uintptr, touch bool) error {
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	if touch {
		b := unsafe.Slice((*byte)(p), size)
		for off := 0; off < len(b); off += 4096 {
			b[off] = 1
		}
	}
	if err := unix.MunmapPtr(p, size); err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	return nil
}

func churn() error {
	if err := mapUnmap(256<<10, true); err != nil {
		return err
	}
	cur, _, _ := unix.RawSyscall(unix.SYS_BRK, 0, 0, 0)
	if got, _, _ := unix.RawSyscall(unix.SYS_BRK, cur+64<<10, 0, 0); got != cur+64<<10 {
		return fmt.Errorf("brk: could not grow")
	}
	unix.RawSyscall(unix.SYS_BRK, cur, 0, 0)
	return nil
}
