#include "textflag.h"

// func rawClone3(args *cloneArgs, size uintptr) (pid, errno uintptr)
//
// clone3 with CLONE_VM: the child starts on the stack args names, whose
// top holds childMain's argument (see cloneChild), runs childMain there
// and never returns.
TEXT ·rawClone3(SB),NOSPLIT,$0-32
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	$435, AX	// SYS_clone3
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$0, pid+16(FP)
	NEGQ	AX
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
child:
	// The argument sits 8 bytes above SP; CALL wants it at SP.
	MOVQ	SP, BX
	MOVQ	8(BX), AX
	MOVQ	AX, 0(BX)
	CALL	·childMain(SB)
	MOVL	$125, DI
	MOVL	$231, AX	// SYS_exit_group
	SYSCALL
	INT	$3
