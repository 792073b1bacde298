#include "textflag.h"

// func rawClone3(args *cloneArgs, size uintptr) (pid, errno uintptr)
//
// clone3 with CLONE_VM: the child starts on the stack args names, whose
// top holds childMain's argument (see cloneChild), runs childMain there
// and never returns.
TEXT ·rawClone3(SB),NOSPLIT,$0-32
	MOV	args+0(FP), A0
	MOV	size+8(FP), A1
	MOV	$435, A7	// SYS_clone3
	ECALL
	BEQ	ZERO, A0, child
	MOV	$-4096, T0
	BLTU	T0, A0, err
	MOV	A0, pid+16(FP)
	MOV	ZERO, errno+24(FP)
	RET
err:
	MOV	ZERO, pid+16(FP)
	SUB	A0, ZERO, A0
	MOV	A0, errno+24(FP)
	RET
child:
	// The argument sits at 8(X2), where CALL's callee looks for it.
	CALL	·childMain(SB)
	MOV	$125, A0
	MOV	$94, A7	// SYS_exit_group
	ECALL
	WORD	$0
