#include "textflag.h"

// func rawClone3(args *cloneArgs, size uintptr) (pid, errno uintptr)
//
// clone3 with CLONE_VM: the child starts on the stack args names, whose
// top holds childMain's argument (see cloneChild), runs childMain there
// and never returns.
TEXT ·rawClone3(SB),NOSPLIT,$0-32
	MOVD	args+0(FP), R0
	MOVD	size+8(FP), R1
	MOVD	$435, R8	// SYS_clone3
	SVC
	CMP	$0, R0
	BEQ	child
	CMN	$4095, R0
	BCC	ok
	MOVD	ZR, pid+16(FP)
	NEG	R0, R0
	MOVD	R0, errno+24(FP)
	RET
ok:
	MOVD	R0, pid+16(FP)
	MOVD	ZR, errno+24(FP)
	RET
child:
	// The argument sits at 8(RSP), where BL's callee looks for it.
	BL	·childMain(SB)
	MOVD	$125, R0
	MOVD	$94, R8	// SYS_exit_group
	SVC
	UNDEF
