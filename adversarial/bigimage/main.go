// Command bigimage is an executable whose image holds 160 MiB of .bss: the
// kernel maps it at execve, with no syscall a seccomp filter sees. It
// touches every page of it, prints "touched" and exits. sandlock's tests
// run it under a memory limit far below its image.
package main

import (
	"fmt"
	"os"
)

// big is zero-initialized: the linker places it in the image's .bss.
var big [160 << 20]byte

func main() {
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	fmt.Println("touched")
	os.Exit(0)
}
