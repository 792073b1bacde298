#include "textflag.h"

// func rawClone3(args *cloneArgs, size uintptr) (pid, errno uintptr)
//
// clone3 with CLONE_VM: the child starts on the stack args names, whose
// top holds childMain's argument (see cloneChild), runs childMain there
// and never returns.
TEXT ·rawClone3(SB),NOSPLIT,$0-16
	MOVW	args+0(FP), R0
	MOVW	size+4(FP), R1
	MOVW	$435, R7	// SYS_clone3
	SWI	$0
	CMP	$0, R0
	BEQ	child
	MOVW	$0xfffff001, R1
	CMP	R1, R0
	BLS	ok
	MOVW	$0, R1
	MOVW	R1, pid+8(FP)
	RSB	$0, R0, R0
	MOVW	R0, errno+12(FP)
	RET
ok:
	MOVW	R0, pid+8(FP)
	MOVW	$0, R1
	MOVW	R1, errno+12(FP)
	RET
child:
	// The argument sits at 8(R13); BL's callee looks for it at 4(R13).
	NOP	R13	// tell vet SP changed
	MOVW	8(R13), R0
	MOVW	R0, 4(R13)
	BL	·childMain(SB)
	MOVW	$125, R0
	MOVW	$248, R7	// SYS_exit_group
	SWI	$0
	WORD	$0
