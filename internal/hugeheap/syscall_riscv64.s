#include "textflag.h"

// func syscall3(trap, a1, a2, a3 uintptr) uintptr
TEXT ·syscall3(SB),NOSPLIT,$0-40
	MOV	a1+8(FP), A0
	MOV	a2+16(FP), A1
	MOV	a3+24(FP), A2
	MOV	trap+0(FP), A7
	ECALL
	MOV	A0, ret+32(FP)
	RET

// func textBounds() (start, end uintptr)
TEXT ·textBounds(SB),NOSPLIT,$0-16
	MOV	$runtime·text(SB), A0
	MOV	A0, start+0(FP)
	MOV	$runtime·epclntab(SB), A0
	MOV	A0, end+8(FP)
	RET
