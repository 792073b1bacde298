// Package safe turns a panic on one of berth's own goroutines into an
// error. berth runs as PID 1: a panic that reaches the top of any
// goroutine ends the process, and the kernel with it. A goroutine that
// reports on a channel or a result runs its work through Call, so a
// defect fails that one operation, naming the panic and where it came
// from, and the process lives on. boot has its own goSafe; this is for
// the packages below it (container, board, image, internal/*), which
// cannot import boot.
package safe

import (
	"fmt"
	"runtime/debug"
)

// PanicError is a panic recovered by Call or Recover.
type PanicError struct {
	Op    string // the operation that panicked, e.g. "build the container's tree"
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack, from debug.Stack
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s: internal error (panic: %v)\n%s", e.Op, e.Value, e.Stack)
}

// Recover, deferred directly (defer safe.Recover(op, &err)), stops a
// panic of the deferring function and stores it in *errp as a
// *PanicError of op.
func Recover(op string, errp *error) {
	if p := recover(); p != nil {
		*errp = &PanicError{Op: op, Value: p, Stack: debug.Stack()}
	}
}

// Call runs f, the operation op, and returns its error, or the panic it
// raised as a *PanicError. What f deferred has run either way. A
// goroutine locked to its thread stays locked: one that panicked with
// the thread in another namespace can end without unlocking it, and Go
// discards the thread.
func Call(op string, f func() error) (err error) {
	defer Recover(op, &err)
	return f()
}
