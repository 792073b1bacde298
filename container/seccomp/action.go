package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// An Action is what the filter does with a matching system call, named as
// in libseccomp and the OCI runtime spec.
type Action string

// The actions a profile may use.
const (
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActErrno       Action = "SCMP_ACT_ERRNO" // fail with errnoRet (default EPERM)
	ActKill        Action = "SCMP_ACT_KILL"  // same as ActKillThread
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActTrace       Action = "SCMP_ACT_TRACE" // notify a ptrace tracer with errnoRet as data
	ActLog         Action = "SCMP_ACT_LOG"
	ActNotify      Action = "SCMP_ACT_NOTIFY" // parsed, but rejected: needs a listener
)

// An Operator compares a system call argument with a rule's value.
type Operator string

// The comparisons of an argument a with value v (and valueTwo w), all
// unsigned 64-bit.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"        // a != v
	OpLessThan     Operator = "SCMP_CMP_LT"        // a < v
	OpLessEqual    Operator = "SCMP_CMP_LE"        // a <= v
	OpEqualTo      Operator = "SCMP_CMP_EQ"        // a == v
	OpGreaterEqual Operator = "SCMP_CMP_GE"        // a >= v
	OpGreaterThan  Operator = "SCMP_CMP_GT"        // a > v
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ" // a & v == w
)

var operators = []Operator{OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual}

// Kernel return values this package builds on (SECCOMP_RET_*).
const (
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retKillThread  = unix.SECCOMP_RET_KILL_THREAD
	retTrap        = unix.SECCOMP_RET_TRAP
	retErrno       = unix.SECCOMP_RET_ERRNO
	retTrace       = unix.SECCOMP_RET_TRACE
	retLog         = unix.SECCOMP_RET_LOG
	retAllow       = unix.SECCOMP_RET_ALLOW

	retENOSYS = retErrno | uint32(unix.ENOSYS)
	retEPERM  = retErrno | uint32(unix.EPERM)
)

// maxErrno is the largest errno the kernel passes on (MAX_ERRNO).
const maxErrno = 4095

// ret returns the kernel return value of action a with errno (or trace
// message) errnoRet; nil means EPERM, as in runc.
func ret(a Action, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		if a != ActErrno && a != ActTrace {
			return 0, fmt.Errorf("errnoRet is only valid with %s or %s, not %s", ActErrno, ActTrace, a)
		}
		if *errnoRet > maxErrno {
			return 0, fmt.Errorf("errnoRet %d is above %d", *errnoRet, maxErrno)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case ActAllow:
		return retAllow, nil
	case ActErrno:
		return retErrno | data, nil
	case ActKill, ActKillThread:
		return retKillThread, nil
	case ActKillProcess:
		return retKillProcess, nil
	case ActTrap:
		return retTrap, nil
	case ActTrace:
		return retTrace | data, nil
	case ActLog:
		return retLog, nil
	case ActNotify:
		return 0, fmt.Errorf("%s is not supported: berth runs no seccomp notify listener", a)
	case "":
		return 0, fmt.Errorf("action is missing")
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

// precedence ranks a return value as the kernel does when several filters
// disagree: the higher, the more restrictive.
func precedence(r uint32) int {
	switch r & unix.SECCOMP_RET_ACTION_FULL {
	case retKillProcess:
		return 7
	case retKillThread:
		return 6
	case retTrap:
		return 5
	case retErrno:
		return 4
	case unix.SECCOMP_RET_USER_NOTIF:
		return 3
	case retTrace:
		return 2
	case retLog:
		return 1
	}
	return 0
}
