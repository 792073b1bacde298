#include "textflag.h"

// func syscall3(trap, a1, a2, a3 uintptr) uintptr
TEXT ·syscall3(SB),NOSPLIT,$0-40
	MOVD	a1+8(FP), R0
	MOVD	a2+16(FP), R1
	MOVD	a3+24(FP), R2
	MOVD	trap+0(FP), R8
	SVC
	MOVD	R0, ret+32(FP)
	RET

// func textBounds() (start, end uintptr)
TEXT ·textBounds(SB),NOSPLIT,$0-16
	MOVD	$runtime·text(SB), R0
	MOVD	R0, start+0(FP)
	MOVD	$runtime·epclntab(SB), R0
	MOVD	R0, end+8(FP)
	RET
