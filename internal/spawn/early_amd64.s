#include "textflag.h"

// func rawCloneEarly(args *cloneArgs, size uintptr, fn uintptr, e *earlyChild) (pid uintptr, err syscall.Errno)
//
// clone3 whose child starts on the stack clone_args gives it: it cannot
// return into the parent's frame, so it calls fn(e) from here, fn being
// the ABIInternal entry of earlyMain (argument in AX, X15 zero). Calling
// earlyMain by its symbol would go through an ABI wrapper, which the race
// detector instruments.
TEXT ·rawCloneEarly(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	fn+16(FP), R12 // R12 and R13 are kept by the syscall, in both processes
	MOVQ	e+24(FP), R13
	MOVQ	$435, AX // SYS_clone3
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, pid+32(FP)
	NEGQ	AX
	MOVQ	AX, err+40(FP)
	RET
ok:
	MOVQ	AX, pid+32(FP)
	MOVQ	$0, err+40(FP)
	RET
child:
	ANDQ	$~15, SP
	SUBQ	$32, SP // room for the callee to spill its argument
	MOVQ	R13, AX
	XORPS	X15, X15
	CALL	R12
	MOVL	$253, DI
	MOVL	$231, AX // SYS_exit_group; earlyMain does not return
	SYSCALL
	JMP	child

// func loadUint32(p *uint32) uint32
TEXT ·loadUint32(SB),NOSPLIT,$0-12
	MOVQ	p+0(FP), AX
	MOVL	0(AX), AX
	MOVL	AX, ret+8(FP)
	RET

// func casUint32(p *uint32, old, new uint32) bool
TEXT ·casUint32(SB),NOSPLIT,$0-17
	MOVQ	p+0(FP), BX
	MOVL	old+8(FP), AX
	MOVL	new+12(FP), CX
	LOCK
	CMPXCHGL	CX, 0(BX)
	SETEQ	ret+16(FP)
	RET
