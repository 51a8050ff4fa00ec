package main

func int80call(nr uintptr) uintptr

// int80 makes syscall nr through int 0x80 and returns its raw result.
func int80(nr uintptr) (int64, bool) { return int64(int80call(nr)), true }
